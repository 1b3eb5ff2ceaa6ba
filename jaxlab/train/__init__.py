"""Training: state, pure train-step builder, loop with checkpoints and metrics."""

from jaxlab.train.losses import masked_cross_entropy
from jaxlab.train.loop import LoopResult, LoopSettings, NonFiniteLossError, train_loop
from jaxlab.train.state import TrainState
from jaxlab.train.step import make_train_step, train_step_fn

__all__ = [
    "LoopResult",
    "LoopSettings",
    "NonFiniteLossError",
    "TrainState",
    "make_train_step",
    "masked_cross_entropy",
    "train_loop",
    "train_step_fn",
]
