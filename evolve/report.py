"""A run's report: Pareto scatters for each pair of objectives, hypervolume and each
objective's min/mean/max per generation, failures by reason, the lineage of one individual;
PNG files plus one self-contained HTML page (inline SVG), plots first and tables after.

Sized for long runs: the parent map is read once and every ancestry is walked in memory
(the cost follows the ancestries, not the run's history of paths), a large point cloud is
rasterised inside the SVG, and labels, lineage nodes and table rows are capped.
"""
from __future__ import annotations

import html
import io
import itertools
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from evolve.errors import EvolveError
from evolve.genstats import failure_reason
from evolve.store import Store

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_LABELS = 10  # front points named on a scatter; more would print over each other
MAX_REASONS = 12  # bars in the failures plot (the rest summed as "other reasons")
LINEAGE_NODES = 40  # the nearest ancestors drawn; a long run's ancestry holds thousands
LINEAGE_LABELS = 16  # every drawn node named up to this many, else the chosen one and its parents
TABLE_ROWS = 50  # front points listed in the page's table
RASTER_POINTS = 2000  # a cloud larger than this is one image inside the SVG, not a path per point


@dataclass(frozen=True)
class Point:
    individual: str
    generation: int
    objectives: list[float | None]
    feasible: bool
    status: str
    why: str | None  # the failure's or infeasibility's reason (`genstats.failure_reason`)


@dataclass(frozen=True)
class RunData:
    run_id: str
    species: str
    objectives: list[Mapping[str, object]]  # as run_species stores them: {metric, direction, ref}
    points: list[Point]
    front: list[str]
    front_generation: int | None
    hypervolume: list[tuple[int, float | None]]
    objective_stats: list[tuple[int, list[dict[str, Any]]]]  # (generation, generations.objective_stats)
    lineage: list[tuple[int, str, int, str, list[str]]]  # (depth, individual, generation, origin, parents)
    individual: str | None

    def reasons(self) -> list[tuple[str, int]]:
        """Why evaluations failed or came out infeasible, most frequent first."""
        return Counter(p.why for p in self.points if p.why is not None).most_common()


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
    points = [Point(r[0], int(r[1]), list(r[2] or []), bool(r[3]), r[4], _why(r[4], r[5], bool(r[3]), r[6]))
              for r in store.query(
        "SELECT e.individual_id, e.generation, e.objectives, e.feasible, e.status, e.error, e.note "
        "FROM evaluations e JOIN individuals i USING (run_id, individual_id) "
        "WHERE e.run_id = ? AND i.species = ? ORDER BY e.individual_id", [run_id, of])]
    latest = store.query("SELECT max(f.generation) FROM fronts f JOIN individuals i USING (run_id, individual_id) "
                         "WHERE f.run_id = ? AND i.species = ?", [run_id, of])[0][0]
    front = [r[0] for r in store.query(
        "SELECT f.individual_id FROM fronts f JOIN evaluations e USING (run_id, individual_id) "
        "JOIN individuals i USING (run_id, individual_id) "
        "WHERE f.run_id = ? AND f.generation = ? AND f.rank = 0 AND e.feasible AND i.species = ? "
        "ORDER BY f.individual_id", [run_id, latest, of])] if latest is not None else []
    has_stats = bool(store.query("SELECT 1 FROM information_schema.columns "
                                 "WHERE table_name = 'generations' AND column_name = 'objective_stats'"))
    gens = store.query(
        f"SELECT generation, hypervolume, {'objective_stats' if has_stats else 'NULL'} FROM generations "
        "WHERE run_id = ? AND species = ? ORDER BY generation", [run_id, of])
    hv = [(int(g), h) for g, h, _ in gens]
    stats = [(int(g), json.loads(s)) for g, _, s in gens if s is not None and s != "[]"]
    # the parent map, read once: every ancestry below is walked in memory
    family = {r[0]: (int(r[1]), r[2], list(r[3])) for r in store.query(
        "SELECT individual_id, generation, origin, parents FROM individuals WHERE run_id = ?", [run_id])}
    chosen = individual
    if chosen is None and front:  # the front member with the richest ancestry
        chosen = max(front, key=lambda ind: (len(ancestry(family, ind)), ind))
    lineage: list[tuple[int, str, int, str, list[str]]] = []
    if chosen is not None:
        if chosen not in family:
            raise EvolveError(f"run {run_id}: no individual {chosen!r}")
        lineage = sorted((depth, ind, *family[ind]) for ind, depth in ancestry(family, chosen).items())
    return RunData(run_id, of, objectives, points, front, latest, hv, stats, lineage, chosen)


def ancestry(family: Mapping[str, tuple[int, str, list[str]]], individual: str) -> dict[str, int]:
    """individual -> its smallest number of parent steps from `individual` (itself 0), in
    the order found, breadth first: each ancestor is visited once however many paths lead to it (what the
    store's `lineage` macro answers in SQL)."""
    depth = {individual: 0}
    step = [individual]
    while step:
        nxt = []
        for ind in step:
            for parent in family.get(ind, (0, "", []))[2]:
                if parent not in depth and parent in family:
                    depth[parent] = depth[ind] + 1
                    nxt.append(parent)
        step = nxt
    return depth


def _why(status: str, error: str | None, feasible: bool, note: str | None) -> str | None:
    if status != "ok":
        return failure_reason(status, error)
    return None if feasible else failure_reason("infeasible", note)


def _label(obj: Mapping[str, object]) -> str:
    arrow = "↑" if obj.get("direction") == "max" else "↓"
    return f"{obj['metric']} ({obj.get('direction', 'min')} {arrow})"


def figures(data: RunData) -> dict[str, Figure]:
    """name -> matplotlib Figure (Agg backend, nothing shown)."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text in the page: smaller, searchable
    import matplotlib.pyplot as plt

    figs: dict[str, Figure] = {}
    for i, j in itertools.combinations(range(len(data.objectives)), 2):
        figs[f"pareto_{i}_{j}"] = _pareto_figure(data, i, j, plt)
    figs["hypervolume"] = _hypervolume_figure(data, plt)
    if data.objective_stats:
        figs["objectives"] = _objectives_figure(data, plt)
    if data.reasons():
        figs["failures"] = _failures_figure(data, plt)
    if data.lineage:
        figs["lineage"] = _lineage_figure(data, plt)
    return figs


def _groups(points: Sequence[Point], i: int, j: int) -> list[tuple[float, float, list[Point]]]:
    """Points on the (i, j) plane grouped by position: individuals on one spot are counted."""
    at: dict[tuple[float, float], list[Point]] = {}
    for p in points:
        x, y = (p.objectives[i] if i < len(p.objectives) else None), (p.objectives[j] if j < len(p.objectives)
                                                                      else None)
        if x is not None and y is not None and math.isfinite(x) and math.isfinite(y):
            at.setdefault((x, y), []).append(p)
    return [(x, y, ps) for (x, y), ps in sorted(at.items())]


def _sizes(groups: Sequence[tuple[float, float, list[Point]]], base: float) -> list[float]:
    """Marker area grows with the number of individuals on the spot."""
    return [base * (1 + 1.5 * math.log2(len(ps))) for _, _, ps in groups]


def _pareto_figure(data: RunData, i: int, j: int, plt: ModuleType) -> Figure:
    from matplotlib.collections import PathCollection

    fig, ax = plt.subplots(figsize=(7.2, 5.4))
    front = set(data.front)
    kinds = {
        "evaluated": [p for p in data.points if p.individual not in front and p.why is None],
        "front": [p for p in data.points if p.individual in front],
        "infeasible": [p for p in data.points if p.status == "ok" and p.why is not None],
        "failed": [p for p in data.points if p.status != "ok"],
    }
    # drawn bottom to top: a failure on the same spot as a front member stays visible
    style = {"evaluated": ("#7f9fbf", 0.6, "o", 2, 14.0),  # colour, alpha, marker, zorder, area of one
             "front": ("#d62728", 0.9, "o", 3, 40.0),
             "infeasible": ("#ff7f0e", 0.9, "+", 4, 40.0),
             "failed": ("#222222", 0.9, "x", 5, 40.0)}
    counted: list[tuple[int, float, float]] = []  # (count, x, y) of shared spots, for "×N" labels
    for kind, pts in kinds.items():
        groups = _groups(pts, i, j)
        off = len(pts) - sum(len(ps) for _, _, ps in groups)
        if not pts:
            continue
        color, alpha, marker, zorder, base = style[kind]
        legend = f"{kind} ({len(pts)}" + (f"; {off} without values, not drawn" if off else "") + ")"
        if kind == "front":
            legend = (f"Pareto front, generation {data.front_generation} ({len(pts)} individuals "
                      f"on {len(groups)} points)")
        if groups:
            xs, ys, _ = zip(*groups)
            coll = ax.scatter(xs, ys, s=_sizes(groups, base), color=color, alpha=alpha, marker=marker,
                              zorder=zorder, label=legend, linewidths=1.5 if kind in ("failed", "infeasible") else None)
            coll.set_rasterized(len(groups) > RASTER_POINTS)
            counted.extend((len(ps), x, y) for x, y, ps in groups if len(ps) > 1)
        else:
            ax.scatter([], [], color=color, marker=marker, label=legend)
        if kind == "front" and groups:
            ax.plot(xs, ys, "-", color="#d62728", alpha=0.35, zorder=3)
            _name_front(ax, groups)
    for n, x, y in sorted(counted, reverse=True)[:MAX_LABELS]:  # the most crowded spots
        ax.annotate(f"×{n}", (x, y), textcoords="offset points", xytext=(-6, -12), fontsize=7, color="#444444",
                    zorder=6)
    ax.set_xlabel(_label(data.objectives[i]))
    ax.set_ylabel(_label(data.objectives[j]))
    ax.set_title(f"{data.run_id}: all evaluations and the last front (marker size: individuals on a spot)",
                 fontsize=9)
    legend = ax.legend(loc="best", fontsize=7)
    for handle in legend.legend_handles:  # one size in the legend, whatever a spot's count
        if isinstance(handle, PathCollection):
            handle.set_sizes([30.0])
    ax.grid(alpha=0.3)
    return fig


def _name_front(ax: Axes, groups: Sequence[tuple[float, float, list[Point]]]) -> None:
    """Name at most MAX_LABELS front points, spread evenly along the front."""
    k = len(groups)
    picked = range(k) if k <= MAX_LABELS else sorted({round(n * (k - 1) / (MAX_LABELS - 1))
                                                       for n in range(MAX_LABELS)})
    for n in picked:
        x, y, ps = groups[n]
        names = sorted(p.individual for p in ps)
        ax.annotate(names[0] + (f" +{len(names) - 1}" if len(names) > 1 else ""), (x, y),
                    textcoords="offset points", xytext=(5, 5), fontsize=7, zorder=6)
    if k > MAX_LABELS:
        ax.text(0.99, 0.01, f"{len(picked)} of {k} front points named", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7, color="#666666")


def _integer_ticks(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))


def _hypervolume_figure(data: RunData, plt: ModuleType) -> Figure:
    fig, ax = plt.subplots(figsize=(7.2, 3.6))
    known = [(g, h) for g, h in data.hypervolume if h is not None]
    if known:
        gens, hvs = zip(*known)
        ax.plot(gens, hvs, "o-" if len(known) <= 30 else "-", color="#2ca02c")
    ax.set_xlabel("generation")
    _integer_ticks(ax)
    ax.set_ylabel("hypervolume")
    ax.set_title(f"{data.run_id}: hypervolume per generation")
    ax.grid(alpha=0.3)
    return fig


def _objectives_figure(data: RunData, plt: ModuleType) -> Figure:
    n = len(data.objectives)
    fig, axes = plt.subplots(n, 1, figsize=(7.2, 2.4 * n), sharex=True, squeeze=False)
    for k, obj in enumerate(data.objectives):
        ax = axes[k][0]
        rows = [(g, s[k]) for g, s in data.objective_stats if k < len(s) and s[k]["n"]]
        if rows:
            gens = [g for g, _ in rows]
            ax.fill_between(gens, [s["min"] for _, s in rows], [s["max"] for _, s in rows], color="#1f77b4",
                            alpha=0.15, label="min–max")
            ax.plot(gens, [s["mean"] for _, s in rows], "-", color="#1f77b4", label="mean")
            best = "max" if obj.get("direction") == "max" else "min"
            ax.plot(gens, [s[best] for _, s in rows], "-", color="#d62728", lw=1, label=f"best ({best})")
        ax.set_ylabel(_label(obj), fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=7)
    axes[-1][0].set_xlabel("generation")
    _integer_ticks(axes[-1][0])
    axes[0][0].set_title(f"{data.run_id}: objectives over each generation's evaluations")
    return fig


def _failures_figure(data: RunData, plt: ModuleType) -> Figure:
    reasons = data.reasons()
    shown = reasons[:MAX_REASONS]
    rest = sum(n for _, n in reasons[MAX_REASONS:])
    if rest:
        shown.append((f"{len(reasons) - MAX_REASONS} other reasons", rest))
    fig, ax = plt.subplots(figsize=(7.2, 0.5 + 0.35 * len(shown)))
    names = [r for r, _ in shown][::-1]
    counts = [n for _, n in shown][::-1]
    ax.barh(range(len(shown)), counts, color=["#222222" if not r.startswith("infeasible") else "#ff7f0e"
                                              for r in names])
    ax.set_yticks(range(len(shown)), names, fontsize=7)
    for k, n in enumerate(counts):
        ax.annotate(str(n), (n, k), textcoords="offset points", xytext=(3, -3), fontsize=7)
    total = sum(n for _, n in reasons)
    ax.set_xlabel("evaluations")
    ax.set_title(f"{data.run_id}: {total} of {len(data.points)} evaluations failed or were infeasible")
    return fig


def _lineage_figure(data: RunData, plt: ModuleType) -> Figure:
    """The nearest ancestors (at most LINEAGE_NODES, whole steps), the rest summed in the title."""
    depth = 0
    while depth < max(r[0] for r in data.lineage) and \
            sum(r[0] <= depth + 1 for r in data.lineage) <= LINEAGE_NODES:
        depth += 1
    drawn = [r for r in data.lineage if r[0] <= depth]
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    by_gen: dict[int, list[str]] = {}
    for _d, ind, gen, _o, _p in sorted(drawn, key=lambda r: (r[2], r[1])):
        by_gen.setdefault(gen, []).append(ind)
    pos = {ind: (gen, k - (len(inds) - 1) / 2) for gen, inds in by_gen.items() for k, ind in enumerate(inds)}
    for _d, ind, _g, _o, parents in drawn:
        for parent in parents:
            if parent in pos:
                (x0, y0), (x1, y1) = pos[parent], pos[ind]
                ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops={"arrowstyle": "->", "color": "#888888"})
    named = {r[1] for r in drawn if len(drawn) <= LINEAGE_LABELS or r[0] <= 1}
    for _d, ind, _g, _o, _p in drawn:
        x, y = pos[ind]
        chosen = ind == data.individual
        ax.scatter([x], [y], s=120 if chosen else 50, color="#d62728" if chosen else "#1f77b4", zorder=3)
        if ind in named:
            ax.annotate(ind, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=7)
    ax.set_xlabel("generation")
    _integer_ticks(ax)
    ax.set_yticks([])
    total = len(data.lineage) - 1
    oldest = min(r[2] for r in data.lineage)
    title = f"lineage of {data.individual}: {total} ancestor(s) back to generation {oldest}"
    if len(drawn) < len(data.lineage):
        title += f"\nthe nearest {depth} step(s) drawn ({len(drawn) - 1} ancestors)"
    ax.set_title(title, fontsize=9)
    ax.margins(0.15)
    return fig


def write_report(data: RunData, out: Path) -> list[Path]:
    """PNG per figure plus `report.html` (self-contained: inline SVG, no external assets)."""
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    svgs: list[tuple[str, str]] = []
    for name, fig in figures(data).items():
        png = out / f"{name}.png"
        fig.savefig(png, dpi=100, bbox_inches="tight")
        written.append(png)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", bbox_inches="tight", dpi=100)
        svg = buf.getvalue()
        svgs.append((name, svg[svg.index("<svg"):]))
        plt.close(fig)
    page = out / "report.html"
    page.write_text(_html(data, svgs), encoding="utf-8")
    written.append(page)
    return written


_STYLE = ("body{font-family:sans-serif;margin:2em;max-width:1100px} figure{display:inline-block;margin:1em}\n"
          "svg{max-width:100%;height:auto} table{border-collapse:collapse;margin:1em 0} "
          "td,th{border:1px solid #ccc;padding:4px 8px} td.n{text-align:right}")


def _html(data: RunData, svgs: list[tuple[str, str]]) -> str:
    plots = "".join(f'<figure class="plot" id="{n}">{svg}<figcaption>{n}</figcaption></figure>' for n, svg in svgs)
    n_failed = sum(p.status != "ok" for p in data.points)
    n_infeasible = sum(p.status == "ok" and not p.feasible for p in data.points)
    summary = (f"{len(data.points)} evaluations ({n_failed} failed, {n_infeasible} infeasible); Pareto front "
               f"of generation {data.front_generation}: {len(data.front)} individual(s).")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(data.run_id)} report</title>
<style>{_STYLE}</style>
</head><body>
<h1>Run {html.escape(data.run_id)} ({html.escape(data.species)})</h1>
<p>{summary}</p>
{plots}
{_front_table(data)}
{_reasons_table(data)}
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


def _front_table(data: RunData) -> str:
    """The last front, one row per distinct point (its members counted), capped at TABLE_ROWS."""
    front = set(data.front)
    at: dict[tuple[float | None, ...], list[Point]] = {}
    for p in data.points:
        if p.individual in front:
            at.setdefault(tuple(p.objectives), []).append(p)
    points = sorted(at.items(), key=lambda kv: [math.inf if v is None else v for v in kv[0]])
    heads = "".join(f"<th>{html.escape(_label(o))}</th>" for o in data.objectives)
    rows = "".join(
        f"<tr><td>{html.escape(min(p.individual for p in ps))}</td><td class=n>{len(ps)}</td>"
        + "".join(f"<td class=n>{'-' if v is None else f'{v:.6g}'}</td>" for v in values) + "</tr>"
        for values, ps in points[:TABLE_ROWS])
    more = (f"<p>… and {len(points) - TABLE_ROWS} more point(s); `evolve fronts` lists them all.</p>"
            if len(points) > TABLE_ROWS else "")
    return (f"<h2>Pareto front, generation {data.front_generation}: {len(points)} distinct point(s)</h2>"
            f'<table id="front"><tr><th>individual</th><th>members</th>{heads}</tr>{rows}</table>{more}')


def _reasons_table(data: RunData) -> str:
    reasons = data.reasons()
    if not reasons:
        return "<h2>Failures</h2><p>No evaluation failed or was infeasible.</p>"
    rows = "".join(f"<tr><td>{html.escape(r)}</td><td class=n>{n}</td></tr>" for r, n in reasons)
    return f'<h2>Failures and infeasible evaluations by reason</h2><table id="reasons">' \
           f"<tr><th>reason</th><th>evaluations</th></tr>{rows}</table>"
