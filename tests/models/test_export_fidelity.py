"""Export fidelity: `save_pretrained` of Qwen2, the MoE LMs and InternVL writes back the token ids of
config.json and the generation_config.json of the checkpoint the model was loaded from, so that
transformers generates with the same settings; a config built from scratch writes null ids and no
generation_config.json.

Each source checkpoint is a jaxlab export of a tiny random model whose config.json is then given
distinctive token ids and a generation_config.json, as a hub checkpoint has them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pickle

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab import vlm
from jaxlab.models import qwen2
from jaxlab.models.hf_generation import GenerationSettings
from jaxlab.moe import models as moe
from jaxlab.vlm.model import init_variables
from tests.models.qwen2 import random_params as qwen2_params
from tests.moe.models import naive_lm

IDS = {"bos_token_id": 3, "eos_token_id": 5, "pad_token_id": 7}
GENERATION = {
    "bos_token_id": 3, "eos_token_id": [5, 9], "pad_token_id": 7, "do_sample": True, "temperature": 0.7,
    "top_p": 0.8, "top_k": 20, "max_new_tokens": 64, "repetition_penalty": 1.05, "transformers_version": "4.51.0",
}

QWEN2 = qwen2.Qwen2Config(vocab_size=40, hidden_size=16, intermediate_size=24, num_hidden_layers=1,
                          num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
_MOE = dict(vocab_size=40, hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=1, head_dim=8, num_experts=4,
            top_k=2, moe_intermediate_size=12)
MOE = {
    "mixtral": moe.MoELMConfig("mixtral", **_MOE),
    "qwen2_moe": moe.MoELMConfig("qwen2_moe", **_MOE, attention_bias=True, shared_expert_intermediate_size=20,
                                 shared_expert_gate=True),
    "qwen3_moe": moe.MoELMConfig("qwen3_moe", **_MOE, qk_norm=True),
}
INTERNVL = vlm.InternVLConfig(
    vision=vlm.InternVisionConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                  image_size=(28, 28), patch_size=(14, 14), attention_bias=True),
    projector=vlm.ProjectorConfig(16, 16),
    text=qwen2.Qwen2Config(vocab_size=48, hidden_size=16, intermediate_size=24, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64),
    image_token_id=11)


def _internvl_params(config, seed=0):
  """Random float32 params of `config`'s InternVLModel tree (numpy draws: no init is compiled)."""
  shapes = nn.unbox(jax.eval_shape(lambda key: init_variables(config, key), jax.random.key(0)))["params"]
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape), jnp.float32), shapes)


@dataclasses.dataclass(frozen=True)
class Family:
  """One exporter: its module (load_pretrained / save_pretrained), a from-scratch config and params for it,
  and where config.json keeps the token ids (None: the top level; else the sub-config's key)."""

  io: object
  config: object
  params: object
  ids_key: str | None = None


FAMILIES = {
    "qwen2": Family(qwen2, QWEN2, lambda: qwen2_params(QWEN2)),
    **{arch: Family(moe, c, functools.partial(naive_lm.random_params, c, seed=0)) for arch, c in MOE.items()},
    # transformers keeps an InternVL model's token ids in its text_config.
    "internvl": Family(vlm, INTERNVL, lambda: _internvl_params(INTERNVL), ids_key="text_config"),
}


def _read(path) -> dict:
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _write(path, value: dict) -> None:
  with open(path, "w", encoding="utf-8") as f:
    json.dump(value, f)


def _ids_of(config_json: dict, family: Family) -> dict:
  """{bos/eos/pad key: value} as config.json holds them (absent keys left out)."""
  d = config_json if family.ids_key is None else config_json[family.ids_key]
  return {k: d[k] for k in IDS if k in d}


def _source(tmp_path, family: Family, ids=IDS, generation=GENERATION):
  """A checkpoint directory of `family` whose config.json holds `ids` and, unless None, a generation_config.json."""
  path = tmp_path / "source"
  family.io.save_pretrained(family.params(), family.config, path)
  config_json = _read(path / "config.json")
  target = config_json if family.ids_key is None else config_json[family.ids_key]
  for key in IDS:
    target.pop(key, None)
  target.update(ids)
  _write(path / "config.json", config_json)
  if generation is not None:
    _write(path / "generation_config.json", generation)
  return path


def _round_trip(tmp_path, family: Family, **source_kwargs):
  """(config loaded from the source, directory of its re-export)."""
  config, params = family.io.load_pretrained(_source(tmp_path, family, **source_kwargs))
  out = tmp_path / "out"
  family.io.save_pretrained(params, config, out)
  return config, out


@pytest.mark.parametrize("name", FAMILIES)
def test_token_ids_and_generation_config_round_trip(name, tmp_path):
  family = FAMILIES[name]
  _, out = _round_trip(tmp_path, family)
  assert _ids_of(_read(out / "config.json"), family) == IDS
  assert _read(out / "generation_config.json") == GENERATION
  assert not [n for n in os.listdir(out) if n.endswith(".tmp")]  # Written under temporary names, then renamed.


@pytest.mark.parametrize("name", ["qwen2", "mixtral", "internvl"])
def test_config_built_from_scratch_writes_null_ids_and_no_generation_config(name, tmp_path):
  family = FAMILIES[name]
  family.io.save_pretrained(family.params(), family.config, tmp_path / "out")
  assert _ids_of(_read(tmp_path / "out" / "config.json"), family) == dict.fromkeys(IDS)
  assert sorted(os.listdir(tmp_path / "out")) == ["config.json", "model.safetensors"]


def test_checkpoint_without_generation_config_exports_none(tmp_path):
  _, out = _round_trip(tmp_path, FAMILIES["qwen2_moe"], generation=None)
  assert _ids_of(_read(out / "config.json"), FAMILIES["qwen2_moe"]) == IDS
  assert not (out / "generation_config.json").exists()


def test_mixtral_ids_left_out_of_config_json_keep_transformers_defaults(tmp_path):
  # transformers reads a Mixtral config.json without ids as bos 1, eos 2: the export must say so.
  config, out = _round_trip(tmp_path, FAMILIES["mixtral"], ids={}, generation=None)
  assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (1, 2, None)
  assert _ids_of(_read(out / "config.json"), FAMILIES["mixtral"]) == {"bos_token_id": 1, "eos_token_id": 2,
                                                                       "pad_token_id": None}


def test_settings_set_on_a_config_are_written_and_replace_an_earlier_export(tmp_path):
  family = FAMILIES["qwen2"]
  params = family.params()
  out = tmp_path / "out"
  family.io.save_pretrained(params, dataclasses.replace(QWEN2, generation_config=GENERATION), out)
  config = dataclasses.replace(QWEN2, pad_token_id=0, generation_config=GenerationSettings(temperature=0.5))
  family.io.save_pretrained(params, config, out)
  assert _read(out / "generation_config.json") == {"temperature": 0.5}
  assert _read(out / "config.json")["pad_token_id"] == 0
  loaded, _ = family.io.load_pretrained(out)
  assert loaded == config


def test_loaded_config_stays_a_hashable_static_argument(tmp_path):
  family = FAMILIES["qwen3_moe"]
  config, _ = family.io.load_pretrained(_source(tmp_path, family))
  assert config.generation_config == GenerationSettings(GENERATION)
  assert config.generation_config["eos_token_id"] == [5, 9] and config.generation_config.to_dict() == GENERATION
  assert hash(config) == hash(dataclasses.replace(config, generation_config=dict(GENERATION)))
  assert pickle.loads(pickle.dumps(config)) == config
  assert jax.jit(lambda c, x: x + c.generation_config["top_k"], static_argnums=0)(config, 1) == 21


def test_generation_settings_refuse_what_json_cannot_hold():
  with pytest.raises(ValueError, match="temperature"):
    GenerationSettings(temperature=float("nan"))
  with pytest.raises(TypeError, match="set"):
    GenerationSettings(suppress_tokens={1, 2})
  with pytest.raises(ValueError, match="pad_token_id"):
    dataclasses.replace(QWEN2, pad_token_id="0")


# What transformers reads back from the export.


def _check_generation_config(generation_config) -> None:
  g = generation_config
  assert (g.bos_token_id, g.eos_token_id, g.pad_token_id) == (3, [5, 9], 7)
  assert (g.do_sample, g.temperature, g.top_p, g.top_k) == (True, 0.7, 0.8, 20)
  assert (g.max_new_tokens, g.repetition_penalty) == (64, 1.05)


@pytest.mark.parametrize("name", FAMILIES)
def test_transformers_reads_the_ids_and_generation_config(name, tmp_path):
  transformers = pytest.importorskip("transformers", reason="reading the export back needs transformers")
  family = FAMILIES[name]
  _, out = _round_trip(tmp_path, family)
  _check_generation_config(transformers.GenerationConfig.from_pretrained(out))
  text = transformers.AutoConfig.from_pretrained(out).get_text_config()
  assert (text.bos_token_id, text.eos_token_id, text.pad_token_id) == (3, 5, 7)


@pytest.mark.parametrize("name", ["qwen2", "mixtral", "internvl"])
def test_transformers_model_generates_with_the_exported_settings(name, tmp_path):
  pytest.importorskip("torch", reason="loading the export into a transformers model needs torch")
  transformers = pytest.importorskip("transformers", reason="loading the export needs transformers")
  family = FAMILIES[name]
  _, out = _round_trip(tmp_path, family)
  auto = transformers.AutoModelForImageTextToText if name == "internvl" else transformers.AutoModelForCausalLM
  _check_generation_config(auto.from_pretrained(out).generation_config)
