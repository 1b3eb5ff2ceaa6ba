r"""Visual-ARFT's agentic search at small scale: SFT on gold steps, GRPO, then live evaluation with BM25 search.

Data (`jaxlab.agent.search_data`, or the released MAT files with `data.source="mat"` and a corpus
file): a generated world of places and people with emblems, a text corpus about it, and multi-hop
questions whose first hop is the emblem in the image; gold trajectories search, read the
`<information>` reply, search again with the name found, then answer. Evaluation questions show
emblems seen in training but ask about cities the model has never seen, described in an evaluation
corpus of their own (`data.eval_emblems="seen"`): an answer from memory gives the training world's
fact, so the model must search and copy names from what comes back. With "new", the evaluation
emblems are also unseen combinations of the visual words. "simple" needs one search, "hard" two. Models and the loop as in
configs/arft_coding.py (search top-4 from a BM25 index over the corpus).

Variants:
  default: see docs/PERFORMANCE.md for its table and time on 2 CPU cores.
  smoke:   a few trajectories, 28 px tiles, a one-layer LM and two steps per stage, for tests.

  python -m launch.run --config=configs/arft_search.py --workdir=runs/arft_search
"""

import ml_collections

from configs.arft_coding import agent_config
from configs.common import pick_variant

VARIANTS = ("default", "smoke")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = pick_variant(arg, VARIANTS)
  c = agent_config("search", variant)
  # Two <information> replies in the chain. eval_emblems: "seen" (train emblems, new facts in an eval corpus of
  # their own) or "new" (emblems never seen in training: the model must also describe unseen combinations).
  c.data.update(num_eval=150, max_prompt_length=448, max_length=512, eval_emblems="seen")
  c.grpo.update(max_new_tokens=32)  # Search and answer turns: <= 22 tokens.
  c.evaluation.update(max_new_tokens=32)
  if variant == "smoke":
    c.data.update(num_eval=8)
  return c
