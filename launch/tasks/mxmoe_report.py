"""The MxMoE run's report: a markdown table and a perplexity-against-bits plot."""

from __future__ import annotations

import pathlib

from jaxlab import files

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
  """Perplexity against average bits: one line per method over the weight-only budgets, and
  separate markers for the rows that also quantize activations (W4A4, the W5A5-style mix)."""
  import matplotlib

  matplotlib.use("Agg")  # Files only; never a window.
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
  styles = (("RTN", "s", "C0"), ("GPTQ", "o", "C1"), ("MxMoE", "*", "C2"))
  for method, marker, color in styles:
    weight_only = sorted((r["bits"], r["perplexity"]) for r in rows if r["method"] == method and r.get("weight_only"))
    if weight_only:
      ax.plot(*zip(*weight_only), marker=marker, color=color, label=f"{method}, weights only")
    with_acts = [(r["bits"], r["perplexity"]) for r in rows if r["method"] == method and not r.get("weight_only")]
    if with_acts:
      ax.scatter(*zip(*with_acts), marker=marker, s=70, facecolors="none", edgecolors=color,
                 label=f"{method}, activations quantized too")
  for row in rows:
    if row["method"] == "float":
      ax.axhline(row["perplexity"], color="gray", linestyle="--", label="float")
  ax.set_xlabel("average bits per expert weight")
  ax.set_ylabel("validation perplexity")
  ax.legend(fontsize=8)
  ax.grid(True, alpha=0.3)
  fig.tight_layout()
  try:
    with files.atomic_open(path, "wb") as f:  # A failed render leaves the previous plot as it was.
      fig.savefig(f, format="png")
  finally:
    plt.close(fig)


def write_report(workdir: pathlib.Path, results: dict) -> None:
  """report.md and ppl_vs_bits.png in `workdir`, each replaced in one rename."""
  rows = results["rows"]
  text = [
      "# MxMoE quantization report", "",
      f"Model: `{results['model']}`; residual stream rotated by a random Hadamard: {results['rotate']}; "
      f"calibration: {results['calibration'][0]} sequences of {results['calibration'][1]} tokens.",
      f"MoE-block speedups come from the cost model ({results['cost_source']}), not from a measurement.", "",
      markdown_table(rows), "", "![perplexity against bits](ppl_vs_bits.png)", "",
  ]
  files.write_text(workdir / "report.md", "\n".join(text))
  plot(workdir / "ppl_vs_bits.png", rows)
