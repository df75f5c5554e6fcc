"""`evolve run CONFIG [--runs DIR] [--resume RUN_ID] [--address ADDR]`: an evolution run."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from evolve.loop import Observer
from evolve.runs import add_runs_option

if TYPE_CHECKING:
    from rich.console import Console

    from evolve.cluster import ClusterInfo
    from evolve.evaluated import Evaluated
    from evolve.store import GenerationRow


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="evolve a population (embedded Ray, or a cluster with --address)",
                       description="Run an evolution from a YAML config; ends by printing the Pareto front.")
    p.add_argument("config", help="run config (YAML), e.g. configs/quickstart.yaml")
    add_runs_option(p)
    p.add_argument("--resume", metavar="RUN_ID", help="continue a killed run (its id under --runs, or its path)")
    p.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, else the config, else embedded)")
    p.add_argument("--run-id", help="name of the new run directory (default: NAME-DATE-TIME-XXXX)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from evolve.cluster import check_cluster, choose_address
    from evolve.config import load_config, resolve
    from evolve.errors import EvolveError
    from evolve.loop import run_evolution
    from evolve.runs import check_same_config, create_run, find_run, mark_failed
    from evolve.store import Store
    from evolve.tables import front_table

    cfg = load_config(args.config)
    resolved = resolve(cfg, where=args.config)
    runs_root = Path(args.runs)
    out = Console()
    address = choose_address(args.address, cfg.ray.address)
    # before anything is created: a cluster that cannot be joined is one line, and no run
    joined = check_cluster(address) if address else ""
    if args.resume:
        if args.run_id:
            raise EvolveError("--run-id names a new run; it cannot be combined with --resume")
        run_dir = find_run(runs_root, args.resume)
        with Store.open(run_dir, read_only=True) as store:
            info = store.run()
        run_id = info["run_id"]
        check_same_config(info["config"], cfg.to_json_data(), run_id)
        if info["status"] == "finished":
            with Store.open(run_dir, read_only=True) as store:
                out.print(f"run {run_id} has already finished; its front:")
                out.print(front_table(store, species={p.name: p.species for p in resolved.parts}))
            return 0
    else:
        for part in resolved.parts:  # before anything is created: a bad suite is one line, no run
            part.species.verify()
        run_id, run_dir = create_run(resolved, runs_root, run_id=args.run_id)

    err = Console(stderr=True, soft_wrap=not sys.stderr.isatty())  # a log's lines are not wrapped at 80
    names = [p.name for p in resolved.parts]
    observer = Quiet() if args.quiet else (LiveProgress(err, names) if err.is_terminal else LineProgress(err, names))
    where = (f"cluster {address}, {joined}" if address else
             "evaluated in the driver, no Ray" if all(p.evaluation.actors == 0 for p in resolved.parts)
             else "embedded Ray")
    err.print(f"run {run_id} → {run_dir}  ({where})")
    for part in resolved.parts:
        from populations.tower import TowerSpecies

        if isinstance(part.species, TowerSpecies):  # what its sandboxes guarantee (as this machine resolves it)
            from harness_tower.errors import TowerError
            from harness_tower.sandbox import isolation_notice
            try:
                err.print(isolation_notice(part.species.isolation), markup=False)
            except TowerError as exc:
                raise EvolveError(f"species.params.isolation: {exc}") from None
    try:
        summary = run_evolution(resolved, run_id, run_dir, address=address, observer=observer)
    except BaseException as exc:
        # a run that never got going (Ray refused, a pool never came up) is not left "running"
        mark_failed(run_dir, run_id, exc)
        raise
    finally:
        observer.close()
    with Store.open(run_dir, read_only=True) as store:
        out.print(front_table(store, species={p.name: p.species for p in resolved.parts}))
    hvs = {k: v[-1] for k, v in summary.hypervolumes.items() if v and v[-1] is not None}
    hv_text = (", ".join(f"{k} {v:.6g}" for k, v in hvs.items()) if len(summary.hypervolumes) > 1
               else (f"{next(iter(hvs.values())):.6g}" if hvs else ""))
    err.print(f"run {run_id} {summary.status}: {summary.generations} generation(s)"
              + (f" (budget {summary.stopped_by} reached; raise it and --resume {run_id})"
                 if summary.stopped_by else "")
              + (f", hypervolume {hv_text}" if hv_text else "") + f"; store {run_dir / 'store.duckdb'}")
    return 0


class Quiet(Observer):
    """--quiet: nothing shown."""

    def close(self) -> None: ...


def _hv(hv: float | None) -> str:
    return "-" if hv is None else f"{hv:.6g}"


class LineProgress(Quiet):
    """One line per generation (for logs and pipes)."""

    def __init__(self, console: Console, species: Sequence[str]) -> None:
        self.console = console
        self.generations = 0
        self.done = 0
        self.failed = 0
        self.several = len(species) > 1  # lines then name the species

    def started(self, run_id: str, start: int, generations: int, n_actors: int,
                cluster: ClusterInfo | None) -> None:
        self.generations = generations
        if cluster is None:
            self._line(f"starting at generation {start} of {generations}, evaluating in the driver")
            return
        where = f"{cluster.mode}, {cluster.cpus} CPU, {len(cluster.nodes)} node(s)"
        self._line(f"starting at generation {start} of {generations} with {n_actors} actor(s) ({where})")

    def evaluated(self, result: Evaluated, feasible: bool) -> None:
        self.done += 1
        self.failed += result.status != "ok"

    def generation_done(self, stats: GenerationRow) -> None:
        self._line(self.summary(stats))

    def summary(self, stats: GenerationRow) -> str:
        """One generation in one line: what the `generations` row holds."""
        from evolve import cascade
        from evolve.genstats import progress_text

        who = f" {stats.species}" if self.several else ""
        more = "; ".join(t for t in (progress_text(stats.objective_stats, stats.failures),
                                     cascade.progress_text(stats.gated, stats.stage_seconds, stats.gate_saved)) if t)
        # numbered as the store numbers generations (from 0), with how far the run has come
        return (f"generation {stats.generation} ({stats.generation + 1} of {self.generations}){who}: "
                f"evaluations {self.done} done, {self.failed} failed; "
                f"front {stats.front_size} ({stats.front_points} distinct); "
                f"hypervolume {_hv(stats.hypervolume)}; {stats.wall_seconds:.1f}s" + (f"; {more}" if more else ""))

    def event(self, kind: str, message: str) -> None:
        if kind in ("actor_died", "retry", "timeout", "stalled", "run_resumed", "reused", "actors_placed"):
            self._line(f"  {kind}: {message}")

    def _line(self, text: str) -> None:
        # One line per record, whatever its length: a log or a pipe is no 80-column screen
        # (rich would wrap it), and a reason or a path is printed as it is, not as markup.
        self.console.print(text, soft_wrap=True, markup=False, highlight=False)


class LiveProgress(LineProgress):
    """A rich progress display: generations, evaluations done/failed, current hypervolume."""

    def __init__(self, console: Console, species: Sequence[str]) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        super().__init__(console, species)
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                                 console=console)
        self.gen_task = self.progress.add_task("generations", total=1, info="", start=False)
        self.eval_task = self.progress.add_task("evaluations", total=1, info="", start=False)
        self.hv: float | None = None

    def started(self, run_id: str, start: int, generations: int, n_actors: int,
                cluster: ClusterInfo | None) -> None:
        self.generations = generations
        self.progress.start()
        self.progress.update(self.gen_task, total=generations, completed=start, info=f"{n_actors} actor(s)")
        self.progress.start_task(self.gen_task)
        self.progress.start_task(self.eval_task)

    def _info(self) -> str:
        return f"done {self.done} · failed {self.failed} · HV {_hv(self.hv)}"

    def generation_started(self, generation: int, size: int, reused: int) -> None:
        self.progress.update(self.eval_task, total=size, completed=reused,
                             description=f"generation {generation} ({generation + 1} of {self.generations})",
                             info=self._info())

    def evaluated(self, result: Evaluated, feasible: bool) -> None:
        super().evaluated(result, feasible)
        self.progress.update(self.eval_task, advance=1, info=self._info())

    def generation_done(self, stats: GenerationRow) -> None:
        self.progress.console.print(self.summary(stats), markup=False, highlight=False)  # above the bars
        self.hv = stats.hypervolume
        self.progress.update(self.gen_task, completed=stats.generation + 1,
                             info=f"front {stats.front_size} · HV {_hv(self.hv)}")
        self.progress.update(self.eval_task, info=self._info())

    def event(self, kind: str, message: str) -> None:
        if kind in ("actor_died", "retry", "timeout", "stalled", "reused"):
            self.progress.console.print(f"[yellow]{kind}[/]: {message}")

    def close(self) -> None:
        self.progress.stop()
