"""The MxMoE run's report: a markdown table and a perplexity-against-bits plot."""

from __future__ import annotations

import pathlib

_COLUMNS = (
    ("name", "model", "{}"), ("method", "method", "{}"), ("bits", "avg bits", "{:.3f}"),
    ("perplexity", "perplexity", "{:.3f}"), ("agreement_first_k", "greedy agreement (first k)", "{:.2f}"),
    ("agreement_prefix", "common prefix (tokens)", "{:.1f}"), ("distinct_2", "distinct-2", "{:.3f}"),
)


def _cell(row, key, fmt):
  value = row.get(key)
  return "—" if value is None else fmt.format(value)


def markdown_table(rows) -> str:
  speed_keys = sorted({k for row in rows for k in row if k.startswith("speedup_vs_bf16_at_")},
                      key=lambda k: int(k.rsplit("_", 1)[1]))
  columns = list(_COLUMNS) + [(k, f"MoE-block speedup vs bf16, {k.rsplit('_', 1)[1]} tokens", "{:.2f}")
                              for k in speed_keys]
  lines = ["| " + " | ".join(header for _, header, _ in columns) + " |",
           "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(_cell(row, key, fmt) for key, _, fmt in columns) + " |" for row in rows]
  return "\n".join(lines)


def plot(path: pathlib.Path, rows) -> None:
  import matplotlib

  matplotlib.use("Agg")  # Files only; never a window.
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
  float_rows = [r for r in rows if r["method"] == "float"]
  for method, marker in (("RTN", "s"), ("GPTQ", "o"), ("MxMoE", "*")):
    points = sorted((r["bits"], r["perplexity"]) for r in rows if r["method"] == method)
    if points:
      ax.plot(*zip(*points), marker=marker, label=method)
  if float_rows:
    ax.axhline(float_rows[0]["perplexity"], color="gray", linestyle="--", label="float")
  ax.set_xlabel("average bits per expert weight")
  ax.set_ylabel("validation perplexity")
  ax.set_yscale("log")
  ax.legend()
  ax.grid(True, alpha=0.3)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def write_report(workdir: pathlib.Path, results: dict) -> None:
  rows = results["rows"]
  text = [
      "# MxMoE quantization report", "",
      f"Model: `{results['model']}`; residual stream rotated by a random Hadamard: {results['rotate']}; "
      f"calibration: {results['calibration'][0]} sequences of {results['calibration'][1]} tokens.",
      f"MoE-block speedups come from the cost model ({results['cost_source']}), not from a measurement.", "",
      markdown_table(rows), "", "![perplexity against bits](ppl_vs_bits.png)", "",
  ]
  (workdir / "report.md").write_text("\n".join(text))
  plot(workdir / "ppl_vs_bits.png", rows)
