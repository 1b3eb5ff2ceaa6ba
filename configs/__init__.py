"""Experiment configs: one Python file per experiment family.

Each `configs/<name>.py` defines `get_config(arg=None) -> ml_collections.ConfigDict`, a
module-level `VARIANTS` tuple (first = default) and optionally `get_sweep()`. Files are
loaded by path (`launch.config_loader.load_config("configs/lm_tiny.py:smoke")`), so a config
file outside this folder works the same way.
"""
