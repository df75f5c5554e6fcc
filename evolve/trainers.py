"""Trainer actors, and how a run's species share the cluster's actors.

A trainer actor is an evaluator actor (`evolve.actors`: same pool, timeouts, replacement,
failure with reason) that asks Ray for a GPU when the cluster has any
(`ray.cluster_resources()["GPU"] > 0`) and for one CPU otherwise. Species that train models
(`Species.accelerated`, e.g. accordion) get trainer actors; the rest get evaluator actors.

How many, unless `evaluation.actors` says: one trainer per GPU (shared among the
accelerated species, at least one each); on a CPU-only cluster one per accelerated species
beside other species, or every CPU when only trainers run; evaluator actors fill the CPUs
the trainers leave (at least one per species).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from evolve.actors import EvaluatorPool, EventSink
from evolve.config import SpeciesPart
from evolve.errors import EvolveError


def cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0))


def trainer_options(gpus: float | None = None) -> dict[str, float]:
    """Ray resources of one trainer actor: a GPU (and a CPU to drive it) where the cluster has
    GPUs, else one CPU."""
    gpus = cluster_gpus() if gpus is None else gpus
    return {"num_cpus": 1.0, "num_gpus": 1.0} if gpus > 0 else {"num_cpus": 1.0}


def placement(options: Mapping[str, float]) -> str:
    """How an actor is placed, in words: 'GPU (num_gpus=1, num_cpus=1)' or 'CPU (num_cpus=1)'."""
    asks = ", ".join(f"{k}={v:g}" for k, v in sorted(options.items(), reverse=True))
    return f"{'GPU' if options.get('num_gpus', 0) > 0 else 'CPU'} ({asks})"


def plan_actors(parts: Sequence[SpeciesPart], *, cpus: int, gpus: float,
                embedded: bool) -> list[tuple[int, dict[str, float]]]:
    """(actors, Ray options) per species part, in order."""
    trainer = trainer_options(gpus)
    accelerated = [p for p in parts if p.species.accelerated]
    plain = [p for p in parts if not p.species.accelerated]

    def share(group: Sequence[SpeciesPart], total: int) -> None:  # `total` actors split evenly, one at least
        for k, p in enumerate(group):
            counts[id(p)] = p.evaluation.actors or max(1, total // len(group) + (k < total % len(group)))

    counts: dict[int, int] = {}
    if gpus > 0:
        share(accelerated, int(gpus))
    elif plain:
        share(accelerated, len(accelerated))  # one CPU trainer each: the evaluators keep the rest
    else:
        share(accelerated, cpus)
    if plain:  # every trainer holds a CPU too (on a GPU cluster, to drive its GPU)
        share(plain, cpus - sum(counts[id(p)] for p in accelerated))
    plan = [(counts[id(p)], dict(trainer) if p.species.accelerated else {"num_cpus": 1.0}) for p in parts]
    need = sum(n * opts.get("num_cpus", 0) for n, opts in plan)
    if embedded and need > cpus:
        raise EvolveError(f"the species' actors need {need:g} CPU(s) but the embedded Ray has {cpus}; "
                          "lower evaluation.actors (per species) or raise ray.num_cpus")
    return plan


def make_pools(parts: Sequence[SpeciesPart], *, run_id: str, cpus: int, gpus: float, embedded: bool,
               on_event: Callable[[str], EventSink]) -> list[EvaluatorPool]:
    """One pool per species part: trainer actors for accelerated species, evaluators otherwise.
    `on_event(species)` gives the event sink of that species' pool."""
    pools = []
    for part, (n, options) in zip(parts, plan_actors(parts, cpus=cpus, gpus=gpus, embedded=embedded)):
        ev = part.evaluation
        pools.append(EvaluatorPool(part.species, run_id=run_id, n_actors=n, timeout=ev.timeout,
                                   retries=ev.retries, grace=ev.grace, on_event=on_event(part.name),
                                   actor_options=options, calibrate_every=ev.calibration,
                                   role="trainer" if part.species.accelerated else "evaluator"))
    return pools
