"""Entry points with side effects: run one config (`launch.run`), sweep configs (`launch.sweep`).

Importing this package does nothing; `launch.config_loader` and `launch.cli` are cheap to
import (no jax), so a bad flag is reported before any accelerator starts.
"""
