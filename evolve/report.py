"""A run's report: Pareto scatters for each pair of objectives, hypervolume per generation,
the lineage of one individual; PNG files plus one self-contained HTML page (inline SVG).
"""
from __future__ import annotations

import html
import io
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from evolve.errors import EvolveError
from evolve.store import Store

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class RunData:
    run_id: str
    species: str
    objectives: list[Mapping[str, object]]  # as run_species stores them: {metric, direction, ref}
    points: list[tuple[str, int, list[float], bool]]  # (individual, generation, objectives, feasible)
    front: list[str]
    front_generation: int | None
    hypervolume: list[tuple[int, float | None]]
    lineage: list[tuple[int, str, int, str, list[str]]]  # (depth, individual, generation, origin, parents)
    individual: str | None


def load_run(store: Store, individual: str | None = None, species: str | None = None) -> RunData:
    """Everything the report draws, read once from the run's store; in a run of several
    species, of one of them (`species`, default the first)."""
    rows = store.query("SELECT run_id FROM runs")
    if not rows:
        raise EvolveError("the store holds no run")
    run_id = rows[0][0]
    parts = store.species()
    part = next((p for p in parts if p["species"] == species), None) if species is not None else parts[0]
    if part is None:
        known = ", ".join(p["species"] for p in parts)
        raise EvolveError(f"run {run_id} has no species {species!r} (species: {known})")
    of, objectives = part["species"], part["objectives"]
    points = [(r[0], int(r[1]), list(r[2] or []), bool(r[3])) for r in store.query(
        "SELECT e.individual_id, e.generation, e.objectives, e.feasible FROM evaluations e "
        "JOIN individuals i USING (run_id, individual_id) WHERE e.run_id = ? AND i.species = ? "
        "ORDER BY e.individual_id", [run_id, of])]
    latest = store.query("SELECT max(f.generation) FROM fronts f JOIN individuals i USING (run_id, individual_id) "
                         "WHERE f.run_id = ? AND i.species = ?", [run_id, of])[0][0]
    front = [r[0] for r in store.query(
        "SELECT f.individual_id FROM fronts f JOIN evaluations e USING (run_id, individual_id) "
        "JOIN individuals i USING (run_id, individual_id) "
        "WHERE f.run_id = ? AND f.generation = ? AND f.rank = 0 AND e.feasible AND i.species = ? "
        "ORDER BY f.individual_id", [run_id, latest, of])] if latest is not None else []
    hv = [(int(g), h) for g, h in store.query(
        "SELECT generation, hypervolume FROM generations WHERE run_id = ? AND species = ? ORDER BY generation",
        [run_id, of])]
    chosen = individual
    if chosen is None and front:  # the front member with the richest ancestry
        sizes = {ind: store.query("SELECT count(*) FROM lineage(?)", [ind])[0][0] for ind in front}
        chosen = max(front, key=lambda ind: (sizes[ind], ind))
    lineage: list[tuple[int, str, int, str, list[str]]] = []
    if chosen is not None:
        known = store.query("SELECT count(*) FROM individuals WHERE run_id = ? AND individual_id = ?",
                            [run_id, chosen])[0][0]
        if not known:
            raise EvolveError(f"run {run_id}: no individual {chosen!r}")
        lineage = [(int(d), i, int(g), o, list(p)) for d, i, g, o, p, _h, r in
                   store.query("SELECT * FROM lineage(?)", [chosen]) if r == run_id]
    return RunData(run_id, of, objectives, points, front, latest, hv, lineage, chosen)


def _label(obj: Mapping[str, object]) -> str:
    arrow = "↑" if obj.get("direction") == "max" else "↓"
    return f"{obj['metric']} ({obj.get('direction', 'min')} {arrow})"


def figures(data: RunData) -> dict[str, Figure]:
    """name -> matplotlib Figure (Agg backend, nothing shown)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs: dict[str, Figure] = {}
    front = set(data.front)
    n = len(data.objectives)
    for i, j in itertools.combinations(range(n), 2):
        fig, ax = plt.subplots(figsize=(6.4, 4.8))
        rest = [(p[2][i], p[2][j]) for p in data.points if p[0] not in front and p[3] and len(p[2]) == n]
        infeasible = [(p[2][i], p[2][j]) for p in data.points if not p[3] and len(p[2]) == n]
        members = sorted((p[2][i], p[2][j], p[0]) for p in data.points if p[0] in front and len(p[2]) == n)
        if infeasible:
            ax.scatter(*zip(*infeasible), marker="x", color="#bbbbbb", label="infeasible / failed")
        if rest:
            ax.scatter(*zip(*rest), color="#7f9fbf", alpha=0.7, label="evaluated")
        if members:
            xs, ys, _ = zip(*members)
            ax.plot(xs, ys, "-", color="#d62728", alpha=0.4)
            ax.scatter(xs, ys, color="#d62728", s=60, zorder=3, label="Pareto front")
            same: dict[tuple[float, float], list[str]] = {}
            for x, y, name in members:  # one label per point, naming every member on it
                same.setdefault((x, y), []).append(name)
            for (x, y), names_at in same.items():
                label = ", ".join(names_at[:3]) + (f" +{len(names_at) - 3}" if len(names_at) > 3 else "")
                ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
        ax.set_xlabel(_label(data.objectives[i]))
        ax.set_ylabel(_label(data.objectives[j]))
        ax.set_title(f"{data.run_id}: front of generation {data.front_generation}")
        ax.legend(loc="best", fontsize=8)
        ax.grid(alpha=0.3)
        figs[f"pareto_{i}_{j}"] = fig
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    gens = [g for g, h in data.hypervolume if h is not None]
    ax.plot(gens, [h for g, h in data.hypervolume if h is not None], "o-", color="#2ca02c")
    ax.set_xlabel("generation")
    ax.set_xticks(gens)
    ax.set_ylabel("hypervolume")
    ax.set_title(f"{data.run_id}: hypervolume per generation")
    ax.grid(alpha=0.3)
    figs["hypervolume"] = fig
    if data.lineage:
        figs["lineage"] = _lineage_figure(data, plt)
    return figs


def _lineage_figure(data: RunData, plt: ModuleType) -> Figure:
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    by_gen: dict[int, list[str]] = {}
    for _d, ind, gen, _o, _p in sorted(data.lineage, key=lambda r: (r[2], r[1])):
        by_gen.setdefault(gen, []).append(ind)
    pos = {ind: (gen, k - (len(inds) - 1) / 2) for gen, inds in by_gen.items() for k, ind in enumerate(inds)}
    for _d, ind, _g, _o, parents in data.lineage:
        for parent in parents:
            if parent in pos:
                (x0, y0), (x1, y1) = pos[parent], pos[ind]
                ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                            arrowprops={"arrowstyle": "->", "color": "#888888"})
    for ind, (x, y) in pos.items():
        chosen = ind == data.individual
        ax.scatter([x], [y], s=120 if chosen else 60, color="#d62728" if chosen else "#1f77b4", zorder=3)
        ax.annotate(ind, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xlabel("generation")
    ax.set_xticks(sorted(by_gen))
    ax.set_yticks([])
    ax.set_title(f"lineage of {data.individual}")
    ax.margins(0.2)
    return fig


def write_report(data: RunData, out: Path) -> list[Path]:
    """PNG per figure plus `report.html` (self-contained: inline SVG, no external assets)."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    svgs: list[tuple[str, str]] = []
    for name, fig in figures(data).items():
        png = out / f"{name}.png"
        fig.savefig(png, dpi=100, bbox_inches="tight")
        written.append(png)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", bbox_inches="tight")
        svg = buf.getvalue()
        svgs.append((name, svg[svg.index("<svg"):]))
        import matplotlib.pyplot as plt
        plt.close(fig)
    page = out / "report.html"
    page.write_text(_html(data, svgs), encoding="utf-8")
    written.append(page)
    return written


_STYLE = ("body{font-family:sans-serif;margin:2em;max-width:1100px} figure{display:inline-block;margin:1em}\n"
          "svg{max-width:100%;height:auto} table{border-collapse:collapse} "
          "td,th{border:1px solid #ccc;padding:4px 8px}")


def _html(data: RunData, svgs: list[tuple[str, str]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(p[0])}</td><td>{p[1]}</td>"
        + "".join(f"<td>{v:.6g}</td>" for v in p[2]) + "</tr>"
        for p in data.points if p[0] in set(data.front))
    heads = "".join(f"<th>{html.escape(_label(o))}</th>" for o in data.objectives)
    plots = "".join(f'<figure class="plot" id="{n}">{svg}<figcaption>{n}</figcaption></figure>' for n, svg in svgs)
    summary = (f"{len(data.points)} evaluations; Pareto front of generation {data.front_generation}: "
               f"{len(data.front)} individual(s).")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(data.run_id)} report</title>
<style>{_STYLE}</style>
</head><body>
<h1>Run {html.escape(data.run_id)} ({html.escape(data.species)})</h1>
<p>{summary}</p>
<table><tr><th>individual</th><th>generation</th>{heads}</tr>{rows}</table>
{plots}
<script>
// Mark the page once every plot has drawn: each inline SVG must have a non-empty box.
window.addEventListener("load", function () {{
  var ok = 0;
  document.querySelectorAll("figure.plot svg").forEach(function (svg) {{
    var box = svg.getBoundingClientRect();
    if (box.width > 50 && box.height > 50) ok += 1;
  }});
  document.body.setAttribute("data-plots-rendered", String(ok));
}});
</script>
</body></html>
"""
