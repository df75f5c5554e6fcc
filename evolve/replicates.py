"""Re-evaluation with guardrails: front members are evaluated again, and nothing is called
better on one lucky sample.

With `evaluation.replicates: R > 1`, after each generation's tell every member of the
front (and every member kept by the guardrail) that has fewer than R samples is evaluated
once more (a fresh seed, the generation's context; never served from the run's results,
since repeating is the point; on a node its earlier samples did not run on where the
cluster has one: `EvalItem.avoid`). Each replicate is stored (`replicates`: replicate k of an
individual, k = 0 being its `evaluations` row). The individual's objectives in selection
become the mean of its samples, its constraints the mean of theirs: a replicate that fails
while the first evaluation succeeded is kept and counted — its violation makes the mean
infeasible and its missing objectives make the spread infinite — never dropped. pymoo's
survival then ranks the population again on the means.

The guardrail (seed `002`'s minimum samples and minimum delta) decides the reported front
(`standing`): an individual enters it as a `member` only with at least `min_samples`
samples, and, where it dominates a member of the previous front, only when it is better
than each such member by `min_delta` in some objective (and worse in none); until then it
is `pending`. A member leaves only when a member dominates it, or when it is no longer
feasible or in the population: a pending challenger displaces nobody.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from populations.objectives import Objective

MEMBER, PENDING = "member", "pending"


def replicate_seed(seed: int, k: int) -> int:
    """Replicate k's seed: drawn from the individual's own and k (the same on resume)."""
    return int(np.random.SeedSequence([seed, k]).generate_state(1, dtype=np.uint64)[0])


def replicate_id(individual_id: str, k: int) -> str:
    """The item id of replicate k (its trajectory lives under that name)."""
    return f"{individual_id}.r{k}"


def sampled(item_id: str) -> str:
    """The individual an item id samples: `replicate_id`'s inverse (an evaluation's id is its own)."""
    return item_id.rsplit(".r", 1)[0]


@dataclass(frozen=True)
class Aggregate:
    """An individual's samples taken together (minimisation form for F and G)."""

    F: np.ndarray  # (n_obj,) mean
    G: np.ndarray  # (1 + n_constr,) mean
    n: int
    failed: int  # samples whose status was not ok


def aggregate(Fs: Sequence[np.ndarray], Gs: Sequence[np.ndarray], statuses: Sequence[str]) -> Aggregate:
    """The mean of each; a failed sample's infinite objective makes that mean infinite and
    its violation the mean infeasible: counted, never dropped."""
    return Aggregate(np.mean(np.stack(Fs), axis=0), np.mean(np.stack(Gs), axis=0), len(Fs),
                     sum(st != "ok" for st in statuses))


def natural(objectives: Sequence[Objective], F: np.ndarray) -> list[float]:
    """Minimisation-form values back in the metrics' own units."""
    return [float(o.sign * f) for o, f in zip(objectives, F)]


def spread(Fs: Sequence[np.ndarray]) -> list[float]:
    """Per objective, the samples' standard deviation (ddof 1; 0 for one sample, infinite
    when a sample has no value: a failure counts)."""
    F = np.stack(Fs)  # (n, n_obj)
    if len(F) < 2:
        return [0.0] * F.shape[1]
    out = []
    for k in range(F.shape[1]):
        col = F[:, k]
        out.append(float(np.std(col, ddof=1)) if np.all(np.isfinite(col)) else float("inf"))
    return out


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(a <= b) and np.any(a < b))


def better_by(a: np.ndarray, b: np.ndarray, delta: float) -> bool:
    """a beats b by the guardrail: worse in no objective, better by `delta` in one."""
    return bool(np.all(a <= b) and np.any(b - a >= delta) and np.any(a < b))


def standing(front: Iterable[str], members: Iterable[str], F: Mapping[str, np.ndarray],
             feasible: Mapping[str, bool], samples: Mapping[str, int], *, min_samples: int,
             min_delta: float) -> dict[str, str]:
    """The reported front after a generation: `front` is survival's (rank 0 on the means),
    `members` the previous reported front's members, `F`/`feasible`/`samples` every
    individual in the population. Returns individual -> member | pending."""
    front = list(front)
    incumbents = [m for m in members if m in F and feasible.get(m, False)]
    out: dict[str, str] = {}
    for c in front:
        if c in incumbents:
            out[c] = MEMBER
            continue
        beaten = [m for m in incumbents if dominates(F[c], F[m])]
        ok = samples.get(c, 1) >= min_samples and all(better_by(F[c], F[m], min_delta) for m in beaten)
        out[c] = MEMBER if ok else PENDING
    for m in incumbents:  # displaced by survival: only a member may push it out
        if m not in out and not any(v == MEMBER and dominates(F[c], F[m]) for c, v in out.items()):
            out[m] = MEMBER
    return out
