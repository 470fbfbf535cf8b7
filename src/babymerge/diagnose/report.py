"""The diagnose stage's products: ``diagnose.json`` (everything, for machines), ``diagnose.md`` with
``loss_path.csv`` and ``weights.csv`` (tables), and the figures ``loss_path.png``, ``weights.png`` and
``groups.png``."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from ..io import atomic_file
from ..sweep.report import save_figure
from .weights import ALL

WEIGHT_FIELDS = ["layer", "group", "cosine", "text_norm", "multimodal_norm", "distance", "sign_conflict", "entries"]
LAYERED = ("attention", "mlp", "norm")  # the groups with a value per decoder layer
PANELS = (
    ("cosine", "cosine(tau_text, tau_mm)"),
    ("norms", "task-vector L2 norm"),
    ("distance", "L2 distance between parents"),
    ("sign_conflict", "sign-conflict fraction"),
)


def _fmt(value: Any, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(result: dict[str, Any]) -> str:
    """The report: the pair, the loss along alpha with the barriers, and the weight table."""
    lines = [
        "# babymerge diagnose",
        "",
        f"- text-only: `{result['text_model']}`",
        f"- multimodal: `{result['multimodal_model']}`",
        f"- base (shared initialisation): `{result['base']}`",
        f"- interpolation: {result['interpolation']}",
        "",
    ]
    loss = result["loss"]
    if loss:
        sources = list(loss)
        lines += ["## Loss along alpha (mean token loss on held-out data)", ""]
        lines += ["| alpha | " + " | ".join(sources) + " |", "|---|" + "---|" * len(sources)]
        for i, alpha in enumerate(result["alphas"]):
            lines.append(f"| {alpha:g} | " + " | ".join(_fmt(loss[s]["loss"][i]) for s in sources) + " |")
        cells = [f"{_fmt(loss[s]['barrier'])} (alpha {loss[s]['barrier_alpha']:g})" for s in sources]
        lines += ["| **barrier** | " + " | ".join(cells) + " |", ""]
        tokens = ", ".join(f"{s} {loss[s]['tokens']}" for s in sources)
        lines += [f"Tokens scored per alpha: {tokens}.", "", "![loss along alpha](loss_path.png)", ""]
    else:
        lines += ["No held-out data given (--text, --captions with --features): no loss path.", ""]
    lines += ["## Task vectors (each parent minus the base)", ""]
    lines += ["| " + " | ".join(WEIGHT_FIELDS) + " |", "|" + "---|" * len(WEIGHT_FIELDS)]
    lines += ["| " + " | ".join(_fmt(row[f]) for f in WEIGHT_FIELDS) + " |" for row in result["weights"]]
    lines += ["", "![per layer](weights.png)", "", "![per group](groups.png)", ""]
    return "\n".join(lines)


def write_csv(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    with atomic_file(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def loss_figure(result: dict[str, Any]):
    """One panel per source: the loss along alpha, the straight line between the endpoints, the barrier."""
    import matplotlib.pyplot as plt

    loss = result["loss"]
    figure, axes = plt.subplots(1, len(loss), figsize=(4.5 * len(loss), 3.6), squeeze=False)
    for axis, (source, path) in zip(axes[0], loss.items(), strict=True):
        alphas, values = path["alphas"], path["loss"]
        start, end = values[0], values[-1]
        axis.plot(alphas, values, marker="o", label="interpolated model")
        axis.plot([0, 1], [start, end], linestyle="--", color="grey", label="straight line")
        at = path["barrier_alpha"]
        if path["barrier"] > 0:
            line = at * end + (1 - at) * start
            axis.annotate(
                "", xy=(at, line + path["barrier"]), xytext=(at, line), arrowprops={"arrowstyle": "<->", "color": "C3"}
            )
            axis.text(at, line + path["barrier"] / 2, f" barrier {path['barrier']:.3f}", color="C3", va="center")
        axis.set_title(f"held-out {source}")
        axis.set_xlabel("alpha (text-only share)")
        axis.set_ylabel("mean token loss")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def weights_figure(rows: list[dict[str, Any]]):
    """Per decoder layer: cosine, norms, distance and sign-conflict fraction of each layered group."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(2, 2, figsize=(9, 6.5))
    for axis, (key, label) in zip(axes.flat, PANELS, strict=True):
        for colour, group in enumerate(LAYERED):
            cells = [r for r in rows if r["group"] == group and r["layer"].isdigit()]
            layers = [int(r["layer"]) for r in cells]
            if key == "norms":
                for side, marker, style in (("text", "o", "-"), ("multimodal", "s", "--")):
                    values = [r[f"{side}_norm"] for r in cells]
                    axis.plot(layers, values, marker=marker, ls=style, color=f"C{colour}", label=f"{group} {side}")
            else:
                values = [r[key] if r[key] is not None else float("nan") for r in cells]
                axis.plot(layers, values, marker="o", color=f"C{colour}", label=group)
        axis.set_title(label)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("decoder layer")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def groups_figure(rows: list[dict[str, Any]]):
    """Per tensor group over the whole model: cosine and sign-conflict fraction, as bars (groups that neither
    parent changed, such as the black image's buffer, are left out)."""
    import matplotlib.pyplot as plt

    cells = [r for r in rows if r["layer"] == ALL and r["cosine"] is not None]
    names = [r["group"] for r in cells]
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for axis, key, label in (
        (axes[0], "cosine", "cosine(tau_text, tau_mm)"),
        (axes[1], "sign_conflict", "sign-conflict fraction"),
    ):
        axis.bar(names, [r[key] for r in cells], color="C0")
        axis.set_title(label)
        axis.tick_params(axis="x", rotation=30)
        axis.grid(alpha=0.3, axis="y")
    axes[0].axhline(0, color="black", linewidth=0.8)
    figure.tight_layout()
    return figure


def write_products(result: dict[str, Any], folder: Path) -> list[Path]:
    """Write every product of one diagnosis into ``folder``; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    json_path = folder / "diagnose.json"
    with atomic_file(json_path) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    md = folder / "diagnose.md"
    with atomic_file(md) as tmp:
        tmp.write_text(markdown(result), encoding="utf-8")
    written = [json_path, md, folder / "weights.csv"]
    write_csv(written[-1], WEIGHT_FIELDS, result["weights"])
    if result["loss"]:
        sources = list(result["loss"])
        rows = [
            {"alpha": a, **{s: result["loss"][s]["loss"][i] for s in sources}} for i, a in enumerate(result["alphas"])
        ]
        written.append(folder / "loss_path.csv")
        write_csv(written[-1], ["alpha", *sources], rows)
        written.append(save_figure(loss_figure(result), folder / "loss_path.png"))
    written.append(save_figure(weights_figure(result["weights"]), folder / "weights.png"))
    written.append(save_figure(groups_figure(result["weights"]), folder / "groups.png"))
    return written
