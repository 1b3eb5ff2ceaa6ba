"""Judge backends: the OpenAI-compatible client against a local scripted server, and a tiny jaxlab VLM judge."""

import base64
import contextlib
import functools
import http.server
import json
import socket
import threading
import time

import jax
import numpy as np
import pytest
from PIL import Image

from jaxlab.agent.vocab import AgentVocab
from jaxlab.mmif.judge_backends import OpenAIChatJudge, VlmJudge, image_data_url
from jaxlab.mmif.judges import JudgeUnavailable, direct_judge_prompt, run_direct_judge
from jaxlab.models.qwen2 import Qwen2Config
from jaxlab.vlm.chat_template import render_chat
from jaxlab.vlm.config import InternVLConfig
from jaxlab.vlm.generate import generate
from jaxlab.vlm.image_tokens import expand_image_tokens
from jaxlab.vlm.model import InternVLModel, init_params
from jaxlab.vlm.projector import ProjectorConfig
from jaxlab.vlm.tiling import dynamic_preprocess
from jaxlab.vlm.vision import InternVisionConfig

# ---------------------------------------------------------------- a scripted chat-completions server


def _completion(text):
  return json.dumps({"id": "c1", "object": "chat.completion",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}).encode()


class ScriptedServer:
  """Answers each POST with the next (status, body bytes, delay_s) of `script` (the last one repeats)
  and records every request's path, headers and JSON body."""

  def __init__(self, script):
    self.script, self.requests = list(script), []
    server = self

    class Handler(http.server.BaseHTTPRequestHandler):
      def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
        status, payload, delay_s = server.script[min(len(server.requests), len(server.script)) - 1]
        time.sleep(delay_s)
        with contextlib.suppress(OSError):  # The client may have given up.
          self.send_response(status)
          self.send_header("Content-Type", "application/json")
          self.send_header("Content-Length", str(len(payload)))
          self.end_headers()
          self.wfile.write(payload)

      def log_message(self, *args):
        pass

    self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
    self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

  def __enter__(self):
    self.thread.start()
    return self

  def __exit__(self, *exc):
    self.httpd.shutdown()
    self.httpd.server_close()
    self.thread.join()


def _judge(server, sleeps=None, **kwargs):
  sleep = (lambda s: None) if sleeps is None else sleeps.append
  return OpenAIChatJudge(server.base_url, "judge-model", sleep=sleep, **kwargs)


def _png(path, size=8):
  Image.fromarray(np.full((size, size, 3), 200, np.uint8)).save(path)
  return path


def test_a_normal_answer_and_the_request_it_came_from(tmp_path, monkeypatch):
  monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
  image = _png(tmp_path / "cat.png")
  with ScriptedServer([(200, _completion("Summary: Score of constraint_1: 1/1"), 0)]) as server:
    judge = _judge(server)
    verdict = run_direct_judge(judge, ["Use a title."], "A cat.", str(image))
  assert verdict.scores == (1,)
  [request] = server.requests
  body = request["body"]
  assert request["path"] == "/v1/chat/completions" and request["headers"]["Authorization"] == "Bearer sk-test"
  assert body["model"] == "judge-model" and body["temperature"] == 0 and body["max_tokens"] == 2048
  [message] = body["messages"]
  text_part, image_part = message["content"]
  assert message["role"] == "user" and text_part["type"] == "text"
  assert text_part["text"] == direct_judge_prompt(["Use a title."], "A cat.")
  assert image_part["type"] == "image_url"
  url = image_part["image_url"]["url"]
  assert url.startswith("data:image/png;base64,") and base64.b64decode(url.split(",")[1]) == image.read_bytes()
  assert (judge.calls, judge.retries, judge.failures) == (1, 0, 0)


def test_a_text_only_call_sends_no_image_and_no_key_when_none_is_set(monkeypatch):
  monkeypatch.delenv("OPENAI_API_KEY", raising=False)
  with ScriptedServer([(200, _completion("right"), 0)]) as server:
    assert _judge(server, max_tokens=16)("Is it right?", None) == "right"
  [request] = server.requests
  assert [p["type"] for p in request["body"]["messages"][0]["content"]] == ["text"]
  assert "Authorization" not in request["headers"] and request["body"]["max_tokens"] == 16


def test_a_server_error_is_retried_after_a_backoff():
  sleeps = []
  with ScriptedServer([(500, b'{"error": "overloaded"}', 0), (200, _completion("Summary: True"), 0)]) as server:
    judge = _judge(server, sleeps, retry_backoff_s=0.5)
    assert judge("Is it formal?", None) == "Summary: True"
  assert len(server.requests) == 2 and sleeps == [0.5]
  assert (judge.calls, judge.retries, judge.failures) == (1, 1, 0)


def test_a_client_error_is_not_retried():
  sleeps = []
  with ScriptedServer([(400, b'{"error": "bad model name"}', 0)]) as server:
    judge = _judge(server, sleeps)
    with pytest.raises(JudgeUnavailable, match=r"/v1/chat/completions .*after 1 attempt\(s\): HTTP 400.*bad model"):
      judge("Is it formal?", None)
  assert len(server.requests) == 1 and sleeps == []
  assert (judge.calls, judge.retries, judge.failures) == (1, 0, 1)


def test_a_server_slower_than_the_timeout_is_unavailable_after_every_attempt():
  sleeps = []
  with ScriptedServer([(200, _completion("too late"), 0.6)]) as server:
    judge = _judge(server, sleeps, timeout_s=0.2, max_retries=3, retry_backoff_s=1.0)
    start = time.monotonic()
    with pytest.raises(JudgeUnavailable, match=r"after 3 attempt\(s\): .*timed out"):
      judge("Is it formal?", None)
    elapsed = time.monotonic() - start
  assert len(server.requests) == 3 and sleeps == [1.0, 2.0] and elapsed < 2.0
  assert (judge.calls, judge.retries, judge.failures) == (1, 2, 1)


def test_a_reply_that_is_not_json_is_unavailable_without_retry():
  with ScriptedServer([(200, b"<html>gateway</html>", 0)]) as server:
    judge = _judge(server)
    with pytest.raises(JudgeUnavailable, match="not a chat-completions reply.*gateway"):
      judge("Is it formal?", None)
    verdict = run_direct_judge(judge, ["Use a title."], "A cat.", None)
  assert verdict.failure == "unavailable" and verdict.scores is None and "gateway" in verdict.detail
  assert len(server.requests) == 2 and judge.failures == 2


def test_a_refused_connection_is_retried_then_unavailable():
  with socket.socket() as s:  # A port nothing listens on once it is closed.
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  sleeps = []
  judge = OpenAIChatJudge(f"http://127.0.0.1:{port}/v1/", "m", max_retries=2, sleep=sleeps.append)
  with pytest.raises(JudgeUnavailable, match=rf"127.0.0.1:{port}/v1/chat/completions .*2 attempt\(s\)"):
    judge("x", None)
  assert sleeps == [1.0] and judge.retries == 1


def test_image_errors_are_caller_errors(tmp_path):
  judge = OpenAIChatJudge("http://127.0.0.1:9/v1", "m")
  with pytest.raises(FileNotFoundError, match="missing.png"):
    judge("x", str(tmp_path / "missing.png"))
  assert judge.calls == 0
  (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff")
  assert image_data_url(tmp_path / "photo.jpg").startswith("data:image/jpeg;base64,")
  (tmp_path / "notes.txt").write_text("x")
  with pytest.raises(ValueError, match="image type"):
    image_data_url(tmp_path / "notes.txt")


# ---------------------------------------------------------------- a tiny jaxlab VLM as the judge

TILE = 28  # Two 14-pixel patches a side, pixel-shuffled by 2: one image token per tile.
SHORT = "Is the answer right? Reply right or wrong."


@functools.cache
def _tiny_vlm():
  long_prompt = direct_judge_prompt(["Use a title.", "Answer in French."], "A grey square.")
  vocab = AgentVocab.from_texts([render_chat([{"role": "user", "content": [{"type": "image"}]}]), SHORT, long_prompt])
  config = InternVLConfig(
      vision=InternVisionConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                attention_bias=True, image_size=(TILE, TILE), patch_size=(14, 14)),
      projector=ProjectorConfig(16, 32, downsample_ratio=0.5),
      text=Qwen2Config(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128),
      image_token_id=vocab.image_token_id, image_seq_length=1)
  model = InternVLModel(config)
  return vocab, model, init_params(config, jax.random.key(0)), long_prompt


def _vlm_judge(max_prompt_length=60):
  vocab, model, params, _ = _tiny_vlm()
  return VlmJudge(model, params, encode=vocab.encode, decode=vocab.decode, eos_id=vocab.im_end_id,
                  pad_id=vocab.pad_id, tile_size=TILE, tokens_per_tile=1, max_new_tokens=8,
                  max_prompt_length=max_prompt_length)


def test_vlm_judge_is_greedy_and_deterministic_on_the_chat_prompt(tmp_path):
  vocab, model, params, _ = _tiny_vlm()
  image = _png(tmp_path / "square.png", size=40)
  judge = _vlm_judge()
  reply = judge(SHORT, str(image))
  assert isinstance(reply, str) and judge(SHORT, str(image)) == reply
  # The same reply as decoding the rendered ChatML turn (image first) directly.
  text = expand_image_tokens(render_chat([{"role": "user", "content": [{"type": "image"}, {"type": "text",
                                                                                           "text": SHORT}]}]),
                             [1], tokens_per_tile=1)
  ids = np.asarray([vocab.encode(text)], np.int32)
  assert judge.prompt_ids(SHORT, 1) == ids[0].tolist()
  pixels = dynamic_preprocess(Image.open(image).convert("RGB"), tile_size=TILE, max_num=1)
  out = np.asarray(generate(model, params, ids, pixels, max_new_tokens=8, eos_id=vocab.im_end_id,
                            pad_id=vocab.pad_id))[0].tolist()
  expected = out[:out.index(vocab.im_end_id)] if vocab.im_end_id in out else out
  assert reply == vocab.decode(expected)
  assert (judge.calls, judge.prompts_cut) == (2, 0)


def test_vlm_judge_text_only_calls_have_no_image_tokens():
  vocab, _, _, _ = _tiny_vlm()
  judge = _vlm_judge()
  assert isinstance(judge(SHORT, None), str) and judge(SHORT, None) == judge(SHORT, None)
  ids = judge.prompt_ids(SHORT, 0)
  assert vocab.image_token_id not in ids and vocab.decode(ids) == render_chat([{"role": "user", "content": SHORT}])
  # Image markers inside judged text stay text: they cannot claim an image the call does not have.
  assert judge.prompt_ids("<img><IMG_CONTEXT></img>" + SHORT, 0) == ids


def test_vlm_judge_cuts_long_prompts_from_the_front_of_the_text(tmp_path):
  vocab, _, _, long_prompt = _tiny_vlm()
  judge = _vlm_judge(max_prompt_length=60)
  assert len(vocab.encode(long_prompt)) > 60
  reply = judge(long_prompt, str(_png(tmp_path / "square.png")))
  assert isinstance(reply, str) and judge.prompts_cut == 1
  ids = judge.prompt_ids(long_prompt, 1)
  head, tail = vocab.decode(ids[:8]), vocab.decode(ids[-12:])
  assert len(ids) == 60 and judge.prompts_cut == 2
  assert head.startswith("<|im_start|>user\n<img><IMG_CONTEXT></img>\n")
  assert tail.endswith("x/1\n<|im_end|>\n<|im_start|>assistant\n")  # The reply format survives the cut.
  with pytest.raises(ValueError, match="no room"):
    _vlm_judge(max_prompt_length=8).prompt_ids(long_prompt, 1)
  with pytest.raises(FileNotFoundError, match="nope.png"):
    judge(SHORT, str(tmp_path / "nope.png"))
