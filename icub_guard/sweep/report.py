"""A sweep's state (`sweep status`) and its report (`sweep report`): a summary table, the sanity checks that
failed, the failed cells with their errors, and figures (accuracy per cell against d_max or teaching round,
one line per classifier or defence; per-cell cost), read from the results table alone."""

from __future__ import annotations

import math
from pathlib import Path

from .grid import Cell
from .results import STATES, ResultsTable


def status_lines(cells: list[Cell], table: ResultsTable) -> list[str]:
    """done / running / failed / left, then one line per cell that is not done."""
    counts = table.counts([c.hash for c in cells])
    rows = {r["hash"]: r for r in table.rows([c.hash for c in cells])}
    lines = [f"{len(cells)} cells: {counts['done']} done, {counts['running']} running, {counts['failed']} failed, "
             f"{counts['pending']} left"]
    for c in cells:
        r = rows.get(c.hash)
        state = r["status"] if r else "pending"
        if state != "done":
            err = f": {r['error']}" if r and r["error"] else ""
            lines.append(f"  [{state}] cell {c.index} ({c.label}), {r['attempts'] if r else 0} attempt(s){err}")
    return lines


def _cell_markdown(c: Cell, r: dict | None) -> str:
    if r is None or r["status"] != "done":
        state = r["status"] if r else "pending"
        return f"| {c.index} | {c.label} | {state} | {r['attempts'] if r else 0} | | | |"
    s = r["summary"]
    failed = [k for k in s["checks"] if not k["passed"]]
    last = [acc[-1] for acc in s["curves"].values()]
    span = f"{min(last):.2f} – {max(last):.2f}" if last else "-"
    return (f"| {c.index} | {c.label} | done | {r['attempts']} | {r['seconds']:.0f} | "
            f"{span} at {s['x_name']} {s['x'][-1]:g} | {len(s['checks']) - len(failed)}/{len(s['checks'])} |")


def _curves_markdown(c: Cell, r: dict) -> list[str]:
    """One cell's curves: accuracy per x, one row per classifier or defence."""
    s = r["summary"]
    head = f"| {s['x_name']} | " + " | ".join(f"{x:g}" for x in s["x"]) + " |"
    md = [f"### Cell {c.index}: {c.label}", "", head, "|---" * (len(s["x"]) + 1) + "|",
          *(f"| {name} | " + " | ".join(f"{a:.2f}" for a in acc) + " |" for name, acc in s["curves"].items()), ""]
    for title, rows in s.get("tables", {}).items():  # measures that are not curves (evaluate-openset's AUROC)
        cols = list(dict.fromkeys(k for row in rows.values() for k in row))
        md += [f"{title}:", "", "| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|",
               *(f"| {name} | " + " | ".join(str(row.get(k, "")) for k in cols) + " |" for name, row in rows.items()),
               ""]
    return md


def write_report(spec, cells: list[Cell], table: ResultsTable, out: str | Path) -> dict[str, str]:
    """report.md, accuracy.png / .svg and cost.png / .svg in `out`; returns {what: file name}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = {r["hash"]: r for r in table.rows([c.hash for c in cells])}
    counts = table.counts([c.hash for c in cells])
    done = [(c, rows[c.hash]) for c in cells if c.hash in rows and rows[c.hash]["status"] == "done"]
    md = [f"# Sweep `{spec.path.name}`: {spec.evaluation}", "",
          f"{len(cells)} cells ({' × '.join(f'{k} ({len(v)})' for k, v in spec.axes.items())}): "
          + ", ".join(f"{counts[s]} {s if s != 'pending' else 'left'}" for s in STATES) + ".", "",
          f"Fixed: {', '.join(f'{k}={v}' for k, v in spec.fixed.items()) or 'defaults'}. "
          f"Results table: `{spec.results.name}` (SQLite, one row per cell keyed by its configuration hash).", ""]
    codes = sorted({r["code_version"] for _, r in done if r["code_version"]})
    hosts = sorted({r["machine"]["host"] for _, r in done if r["machine"]})
    if done:
        total = sum(r["seconds"] for _, r in done)
        shared = {r["shared"]["token"]: r["shared"]["seconds"] for _, r in done if r["shared"]}
        md += [f"Code: {', '.join(codes)}; machines: {', '.join(hosts)}; {total:.0f} s of cell time, plus "
               f"{sum(sum(v.values()) for v in shared.values()):.0f} s in {len(shared)} shared preparation(s) "
               "(data, features, classifiers, each computed once).", ""]
    md += ["| cell | axes | state | attempts | seconds | accuracy of its curves at the largest x | checks passed |",
           "|---|---|---|---|---|---|---|", *(_cell_markdown(c, rows.get(c.hash)) for c in cells), ""]
    failed_checks = [(c, k) for c, r in done for k in r["summary"]["checks"] if not k["passed"]]
    md += ["## Sanity checks that failed", ""]
    md += [f"- cell {c.index} ({c.label}): **{k['check']}**: {k['detail']}" for c, k in failed_checks] or ["none"]
    failed = [(c, rows[c.hash]) for c in cells if c.hash in rows and rows[c.hash]["status"] == "failed"]
    md += ["", "## Failed cells", ""]
    md += [f"- cell {c.index} ({c.label}), {r['attempts']} attempts: `{r['error']}`" for c, r in failed] or ["none"]
    md += ["", "## Accuracy per cell", "", "Every curve of every finished cell (a rejection is never an error).", ""]
    md += [line for c, r in done for line in _curves_markdown(c, r)] or ["no finished cell yet"]
    files = {"report": "report.md"}
    if done:
        _figures(done, out)
        files.update(accuracy="accuracy.png", cost="cost.png")
        md += ["", "## Figures", "", "![accuracy per cell](accuracy.png)", "", "![cost per cell](cost.png)"]
    (out / "report.md").write_text("\n".join(md) + "\n")
    return files


def _figures(done: list[tuple[Cell, dict]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(done)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axs = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    for ax, (c, r) in zip(axs.flat, done, strict=False):
        s = r["summary"]
        for name, acc in s["curves"].items():
            ax.plot(s["x"], acc, marker="o", ms=3, label=name)
        ax.set_title(c.label, fontsize=8)
        ax.set_xlabel(s["x_name"])
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axs.flat)[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(out / f"accuracy.{ext}", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 0.35 * n + 1.2))
    ax.barh([f"{c.index}: {c.label}" for c, _ in done], [r["seconds"] for _, r in done])
    ax.set_xlabel("seconds per cell (its evaluation; shared preparation not included)")
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(out / f"cost.{ext}", dpi=110)
    plt.close(fig)
