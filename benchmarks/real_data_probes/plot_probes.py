"""Draw the GPU probes (benchmarks/real_data_study/probes.csv) as one BLiMP-fast point per run, grouped by change.

python benchmarks/real_data_probes/plot_probes.py      # writes benchmarks/real_data_study/probes.png
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).resolve().parent.parent / "real_data_study"
STYLE = {"study": ("tab:blue", "o", "tokenizer as in the study"), "prefix space": ("tab:orange", "s", "prefix space")}


def main() -> None:
    rows = list(csv.DictReader(open(RESULTS / "probes.csv", encoding="utf-8")))
    changes = list(dict.fromkeys(row["change"] for row in rows))
    seeds = [float(r["blimp_fast"]) for r in rows if r["change"] == "study configuration" and r["tokenizer"] == "study"]
    mean, sd = statistics.mean(seeds), statistics.stdev(seeds)
    fig, ax = plt.subplots(figsize=(10, 4.2))
    band = f"study configuration: mean +- sd of {len(seeds)} seeds"
    ax.axhspan(mean - sd, mean + sd, color="tab:blue", alpha=0.12, label=band)
    ax.axhline(60, color="black", linestyle="--", linewidth=1, label="target 60")
    for tokenizer, (colour, marker, label) in STYLE.items():
        points = [(changes.index(r["change"]), float(r["blimp_fast"])) for r in rows if r["tokenizer"] == tokenizer]
        offset = -0.12 if tokenizer == "study" else 0.12
        ax.scatter([x + offset for x, _ in points], [y for _, y in points], color=colour, marker=marker, label=label)
    ax.set_xticks(range(len(changes)), changes, rotation=20, ha="right")
    ax.set_ylabel("BLiMP fast, accuracy x100 (chance 50)")
    ax.set_title("Text-only probes on a GPU: 6M words unless named (one point per run or seed)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(RESULTS / "probes.png", dpi=120)
    print(f"wrote {RESULTS / 'probes.png'}")


if __name__ == "__main__":
    main()
