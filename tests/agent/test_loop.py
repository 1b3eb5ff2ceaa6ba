"""The agent vocabulary, prompts, step records and the live multi-round loop (scripted policies)."""

import numpy as np
import pytest

from jaxlab.agent.loop import MAX_ROUNDS, agent_metrics, run_agent
from jaxlab.agent.prompt import CODE_RAN, render_prompt
from jaxlab.agent.records import NO_OBSERVATION, Observation, Trajectory, split_into_steps
from jaxlab.agent.search import BM25Index
from jaxlab.agent.step_source import AgentStepSource
from jaxlab.agent.tools import AgentTools
from jaxlab.agent.vocab import AgentVocab, pieces

CODE = ("<think>The image is upside down.</think><code>```python\nfrom PIL import Image\n"
        "im = Image.open('path_to_input_image.jpg')\nim = im.transpose(Image.Transpose.ROTATE_180)\n"
        "im.save('path_to_output_image.jpg')\n```</code>")
PROBLEM = "<think>The image looks rotated.</think><problem>{'rotation180'}</problem>"
ANSWER = "<think>The shape is on the left.</think><answer>left</answer>"


def _image(seed=0, size=28):
  """A smooth gradient (JPEG keeps it to a few levels) with a seed-dependent tint."""
  yy, xx = np.mgrid[0:size, 0:size]
  tint = np.random.default_rng(seed).integers(0, 100, 3)
  return np.clip(np.stack([yy * 8, xx * 8, (yy + xx) * 4], -1) + tint, 0, 255).astype(np.uint8)


def _coding_trajectory(seed=0):
  image = _image(seed)
  return Trajectory(f"c{seed}", "coding", "Which side is the red square on?", image, (PROBLEM, CODE, ANSWER),
                    (NO_OBSERVATION, Observation(image=image[::-1, ::-1].copy()), NO_OBSERVATION), ("left",),
                    split="simple")


def _search_trajectory():
  info = "<information> 1. Content: Varn lies on the river Tolka. </information>"
  steps = ("<think>Find the city.</think><search>red circle emblem</search>",
           "<think>Found it.</think><answer>Tolka</answer>")
  return Trajectory("s0", "search", "Which river?", _image(1), steps, (Observation(text=info), NO_OBSERVATION),
                    ("Tolka", "the river Tolka"), split="hard")


def test_vocab_round_trips_code_and_tags_and_marks_unknown_pieces():
  text = render_prompt("coding", "Which side?", (PROBLEM, CODE), (NO_OBSERVATION, Observation(image=_image())),
                       tokens_per_tile=2)
  vocab = AgentVocab.from_texts([text])
  assert vocab.decode(vocab.encode(text)) == text
  assert "".join(pieces(CODE)) == CODE and "<think>" in pieces(CODE) and "```python" in pieces(CODE)
  ids, unknown = vocab.encode_counting_unknown("<answer>zebra</answer>")
  assert unknown == 1 and vocab.unk_id in ids
  assert text.count("<IMG_CONTEXT>") == 4 and CODE_RAN in text  # Two images of 2 tokens; the code's reply.


def test_vocab_save_load_and_bad_files(tmp_path):
  vocab = AgentVocab.from_texts(["<think>a b</think>"])
  vocab.save(tmp_path / "vocab.json")
  assert AgentVocab.load(tmp_path / "vocab.json").tokens == vocab.tokens
  (tmp_path / "bad.json").write_text("{not json")
  with pytest.raises(ValueError, match="not an agent vocabulary"):
    AgentVocab.load(tmp_path / "bad.json")
  with pytest.raises(FileNotFoundError, match="no agent vocabulary"):
    AgentVocab.load(tmp_path / "missing.json")
  with pytest.raises(ValueError, match="outside the agent vocabulary"):
    vocab.decode([len(vocab)])


def test_step_records_train_only_the_gold_turn_and_drop_long_samples():
  trajectories = [_coding_trajectory(0), _search_trajectory()]
  samples = split_into_steps(trajectories)
  assert [s.kind for s in samples] == ["problem", "code", "answer", "search", "answer"]
  texts = [render_prompt(s.trajectory.task, s.trajectory.question, s.previous, s.previous_observations,
                         tokens_per_tile=1) + s.solution + "<|im_end|>" for s in samples]
  vocab = AgentVocab.from_texts(texts)
  source = AgentStepSource(samples, vocab, tile_size=28, tokens_per_tile=1, max_prompt_length=160, max_length=240)
  assert len(source) == 5 and source.dropped == 0
  code_record = source[1]
  trained = code_record["targets"][code_record["loss_mask"] == 1]
  assert vocab.decode(trained) == CODE + "<|im_end|>"
  prompt = code_record["prompt_ids"][code_record["prompt_mask"]]
  assert vocab.decode(prompt).endswith("<|im_start|>assistant\n") and PROBLEM in vocab.decode(prompt)
  assert code_record["pixels"].shape == (2, 28, 28, 3)
  np.testing.assert_array_equal(code_record["pixels"][0], code_record["pixels"][1])  # No code has run yet.
  answer_record = source[2]
  assert not np.allclose(answer_record["pixels"][0], answer_record["pixels"][1])  # The fixed view.
  assert source[3]["pixels"].shape == (1, 28, 28, 3)
  short = AgentStepSource(samples, vocab, tile_size=28, tokens_per_tile=1, max_prompt_length=60, max_length=240)
  assert short.dropped > 0 and len(short) + short.dropped == 5
  with pytest.raises(ValueError, match="no step sample fits"):
    AgentStepSource(samples, vocab, tile_size=28, tokens_per_tile=1, max_prompt_length=10, max_length=20)


def test_direct_records_answer_in_one_turn():
  t = _coding_trajectory()
  vocab = AgentVocab.from_texts([render_prompt("coding", t.question, tokens_per_tile=1, mode="direct"),
                                 "<think>I answer from the image.</think><answer>left</answer><|im_end|>"])
  source = AgentStepSource(split_into_steps([t])[-1:], vocab, tile_size=28, tokens_per_tile=1, max_prompt_length=80,
                           max_length=120, mode="direct")
  record = source[0]
  assert vocab.decode(record["targets"][record["loss_mask"] == 1]).endswith("<answer>left</answer><|im_end|>")
  assert "<problem>" not in vocab.decode(record["prompt_ids"])


class ScriptedPolicy:
  """Replies from a per-question list of turns; records every request it saw."""

  def __init__(self, turns_by_question):
    self.turns = {q: list(turns) for q, turns in turns_by_question.items()}
    self.requests = []

  def __call__(self, requests):
    self.requests.append(list(requests))
    return [self.turns[r.question].pop(0) if self.turns[r.question] else "no tags at all" for r in requests]


def test_loop_runs_tools_resends_the_chain_and_stops_at_the_answer():
  coding = _coding_trajectory().item
  search = _search_trajectory().item
  index = BM25Index(["Varn lies on the river Tolka.", "Oskel is a town of hills."])
  policy = ScriptedPolicy({coding.question: [PROBLEM, CODE, ANSWER],
                           search.question: ["<think>Find it.</think><search>Varn river</search>",
                                             "<think>Done.</think><answer>the river Tolka</answer>"]})
  transcripts = run_agent([coding, search], policy, AgentTools(search=index))
  assert [len(batch) for batch in policy.requests] == [2, 2, 1]  # Batched; a finished question leaves.
  coding_run, search_run = transcripts
  assert coding_run.answer == "left" and coding_run.errors == []
  flipped = np.asarray(coding.image)[::-1, ::-1].astype(int)
  assert np.abs(coding_run.current_image.astype(int) - flipped).mean() < 4  # Rotated by the code (JPEG loss).
  last_request = policy.requests[2][0]
  assert last_request.steps == (PROBLEM, CODE) and len(last_request.images) == 2
  np.testing.assert_array_equal(last_request.images[1], coding_run.current_image)  # The output image is sent.
  assert "Tolka" in search_run.observations[0].text and search_run.answer == "the river Tolka"
  assert policy.requests[1][1].observations[0].text.startswith("<information> 1. Content:")
  metrics = agent_metrics(transcripts)
  assert metrics["all"]["em"] == 100.0 and metrics["loop"]["no_answer"] == 0


def test_loop_stops_after_max_rounds_and_counts_errors():
  coding = _coding_trajectory().item
  search = _search_trajectory().item
  looping_code = ("<think>Try.</think><code>```python\nwhile True:\n    pass\n```</code>")
  bad_bytes = b"<think>\xff\xfe</think><answer>x"
  policy = ScriptedPolicy({coding.question: [looping_code, "<think>a</think><search>q</search>"] * 3,
                           search.question: [bad_bytes, "<think>x</think><search>  </search>", "plain text"] * 2})
  from jaxlab.agent.sandbox import SandboxLimits
  tools = AgentTools(search=BM25Index(["one doc"]), sandbox_limits=SandboxLimits(wall_seconds=1.0))
  transcripts = run_agent([coding, search], policy, tools)
  assert len(policy.requests) == MAX_ROUNDS
  assert all(len(t.steps) == MAX_ROUNDS and t.answer is None for t in transcripts)
  assert transcripts[0].errors[:2] == ["code", "action"]
  assert transcripts[1].errors[:2] == ["format", "search"]
  assert "error:" in transcripts[0].observations[0].text
  metrics = agent_metrics(transcripts)
  assert metrics["all"]["f1"] == 0.0 and metrics["loop"]["no_answer"] == 2
  assert metrics["loop"]["errors"]["format"] >= 2 and metrics["loop"]["questions_with_errors"] == 2


def test_direct_mode_is_one_round_without_tools():
  coding = _coding_trajectory().item
  policy = ScriptedPolicy({coding.question: [PROBLEM, ANSWER]})
  [transcript] = run_agent([coding], policy, AgentTools(), mode="direct")
  assert len(policy.requests) == 1 and transcript.answer is None and transcript.errors == ["action"]


def test_no_search_backend_is_a_counted_tool_error():
  search = _search_trajectory().item
  policy = ScriptedPolicy({search.question: ["<think>a</think><search>Varn</search>",
                                             "<think>b</think><answer>Tolka</answer>"]})
  [transcript] = run_agent([search], policy, AgentTools(search=None))
  assert transcript.errors == ["search"] and "no search backend" in transcript.observations[0].text
  assert transcript.answer == "Tolka" and agent_metrics([transcript])["loop"]["errors"] == {"search": 1}
