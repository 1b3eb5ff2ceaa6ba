"""Each model's `attention_implementation` setting reaches `jaxlab.ops.attention`.

On this CPU machine "cudnn" cannot serve, so a model asked for it alone must fail with the
registry's NoImplementationError naming cudnn, and one asked for ("cudnn", "xla") must run.
Traced abstractly (`jax.eval_shape`): nothing is compiled.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.flow.dit import DiT, DiTConfig
from jaxlab.models.decoder_lm import DecoderLM, DecoderLMConfig
from jaxlab.models.qwen2 import Qwen2Config, Qwen2LM
from jaxlab.moe.models import MoEDecoderLM, MoELMConfig
from jaxlab.ops import NoImplementationError
from jaxlab.vlm.vision import InternVisionConfig, InternVisionModel


def _decoder_lm(implementation):
  config = DecoderLMConfig(vocab_size=11, embed_dim=32, num_layers=1, num_heads=2, head_dim=16, mlp_dim=64,
                           attention_implementation=implementation)
  return DecoderLM(config), (jnp.zeros((1, 4), jnp.int32),)


def _qwen2(implementation):
  config = Qwen2Config(vocab_size=32, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=4, num_key_value_heads=2, attention_implementation=implementation)
  return Qwen2LM(config), (np.zeros((1, 4), np.int32),)  # NumPy: the token-range check reads values.


def _moe_lm(implementation):
  config = MoELMConfig("mixtral", vocab_size=32, hidden_size=32, num_layers=1, num_heads=4, num_kv_heads=2,
                       head_dim=8, num_experts=2, top_k=1, moe_intermediate_size=16,
                       attention_implementation=implementation)
  return MoEDecoderLM(config), (jnp.zeros((1, 4), jnp.int32),)


def _vision(implementation):
  config = InternVisionConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                              image_size=(28, 28), attention_implementation=implementation)
  return InternVisionModel(config), (jnp.zeros((1, 28, 28, 3), jnp.float32),)


def _dit(implementation):
  config = DiTConfig(image_size=8, patch_size=4, width=32, depth=1, num_heads=2,
                     attention_implementation=implementation)
  return DiT(config), (jnp.zeros((1, 8, 8, 3), jnp.float32), jnp.zeros((1,), jnp.float32))


MODELS = [_decoder_lm, _qwen2, _moe_lm, _vision, _dit]


def _init_abstractly(build, implementation):
  model, inputs = build(implementation)
  return jax.eval_shape(lambda: model.init(jax.random.key(0), *inputs))


@pytest.mark.parametrize("build", MODELS, ids=lambda f: f.__name__.strip("_"))
def test_the_setting_reaches_the_op(build):
  with pytest.raises(NoImplementationError, match="cudnn needs a GPU"):
    _init_abstractly(build, "cudnn")
  assert _init_abstractly(build, ("cudnn", "xla"))
