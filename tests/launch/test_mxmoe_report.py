"""Tests for `launch/tasks/mxmoe_report.py`: the report files and what a failed write leaves."""

import contextlib
import io

import pytest
from matplotlib.backends import backend_agg

from launch.tasks import mxmoe_report

ROWS = [
    {"name": "float", "method": "float", "bits": 16.0, "perplexity": 9.5, "weight_only": True},
    {"name": "rtn_w4", "method": "RTN", "bits": 4.25, "perplexity": 12.0, "weight_only": True},
    {"name": "mxmoe_4", "method": "MxMoE", "bits": 4.25, "perplexity": 10.5, "weight_only": True,
     "speedup_vs_bf16_at_512": 1.8},
]
RESULTS = {"model": "m", "rotate": False, "calibration": [8, 128], "cost_source": "roofline", "rows": ROWS}


def test_report_and_plot_are_written(tmp_path):
  mxmoe_report.write_report(tmp_path, RESULTS)
  report = (tmp_path / "report.md").read_text()
  assert "| mxmoe_4 | MxMoE | 4.250 | 10.500 |" in report and "| 1.80 |" in report
  assert (tmp_path / "ppl_vs_bits.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["ppl_vs_bits.png", "report.md"]


def test_a_plot_that_fails_halfway_keeps_the_previous_one(tmp_path, monkeypatch):
  mxmoe_report.write_report(tmp_path, RESULTS)
  before = (tmp_path / "ppl_vs_bits.png").read_bytes()
  real_print_pil = backend_agg.FigureCanvasAgg._print_pil

  def fails_halfway(self, target, *args, **kwargs):
    if isinstance(target, io.BytesIO):  # matplotlib's own trial render: let it be.
      return real_print_pil(self, target, *args, **kwargs)
    with contextlib.ExitStack() as stack:
      if not hasattr(target, "write"):
        target = stack.enter_context(open(target, "wb"))  # What savefig(path) amounts to.
      target.write(b"\x89PNG half an image")
      raise MemoryError("out of memory while rendering")

  monkeypatch.setattr(backend_agg.FigureCanvasAgg, "_print_pil", fails_halfway)
  with pytest.raises(MemoryError):
    mxmoe_report.plot(tmp_path / "ppl_vs_bits.png", ROWS)
  assert (tmp_path / "ppl_vs_bits.png").read_bytes() == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ["ppl_vs_bits.png", "report.md"]
  from matplotlib import pyplot  # Imported by `plot`, after it picked the Agg backend.

  assert pyplot.get_fignums() == []  # The figure is closed even when saving fails.
