"""Run configuration: YAML parsed once into frozen pydantic models, errors as one line.

A problem names the file, the field and what would fix it, e.g.
`configs/x.yaml: population.size: must be >= 2 (got 0)`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from evolve.errors import EvolveError

if TYPE_CHECKING:  # imported where used: reading a config needs neither numpy nor the species
    import numpy as np

    from populations.base import Species
    from populations.objectives import Constraint, Objective


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PopulationConfig(_Model):
    size: int = Field(ge=2, description="individuals that survive each generation")
    offspring: int | None = Field(default=None, ge=1, description="offspring per generation (default: size)")


class AlgorithmConfig(_Model):
    name: Literal["nsga2", "nsga3"] = "nsga2"
    partitions: int = Field(default=12, ge=1, description="NSGA-III: das-dennis partitions of the reference directions")


class ObjectiveConfig(_Model):
    metric: str = Field(min_length=1)
    direction: Literal["min", "max"] | None = None
    ref: float | None = Field(default=None, description="hypervolume reference value in the metric's units")


class ConstraintConfig(_Model):
    metric: str = Field(min_length=1)
    le: float | None = None
    ge: float | None = None
    eq: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> ConstraintConfig:
        if self.le is None and self.ge is None and self.eq is None:
            raise ValueError("give at least one bound: le, ge or eq")
        return self


class CascadeConfig(_Model):
    """A cheap stage that gates the full evaluation (`evolve.cascade`)."""

    tasks: int | None = Field(default=None, ge=1, description="tasks of the cheap stage: the first k of the "
                              "generation's draw (default: all of them)")
    depth: int | None = Field(default=None, ge=1, description="tower depth of the cheap stage (default: the "
                              "species' own)")
    metric: str = Field(min_length=1, description="the stage metric the gate reads")
    min: float | None = Field(default=None, description="pass the gate when metric >= min")
    max: float | None = Field(default=None, description="pass the gate when metric <= max")

    @model_validator(mode="after")
    def _one_bound(self) -> CascadeConfig:
        if self.min is None and self.max is None:
            raise ValueError("give a threshold: min or max")
        return self


class EvaluationConfig(_Model):
    timeout: float = Field(default=120.0, gt=0, description="seconds allowed per evaluation")
    retries: int = Field(default=2, ge=0, description="resubmissions after an evaluator actor dies")
    grace: float = Field(default=60.0, ge=0, description="extra seconds before a silent actor is killed")
    actors: int | None = Field(default=None, ge=0, description="evaluator actors (default: one per cluster CPU); "
                               "0 evaluates in the driver (species with cheap, pure evaluation only: numeric)")
    validation: bool = Field(default=True, description="evaluate every new front member on the species' "
                             "validation split (towers: the suite's validation tasks), stored apart")
    replicates: int = Field(default=1, ge=1, description="evaluations of each front member in all: one more "
                            "a generation until it has this many (evolve.replicates); 1: never again")
    min_samples: int = Field(default=1, ge=1, description="samples an individual needs before it may enter "
                             "the reported front (until then: pending); at most replicates")
    min_delta: float = Field(default=0.0, ge=0, description="how much better, in an objective's units, a "
                             "challenger must be than a front member it displaces")
    calibrate: bool = Field(default=False, description="selection reads timing metrics (avg_interval) "
                            "divided by the evaluator's reference seconds (evolve.calibrate)")
    calibrate_every: float = Field(default=300.0, ge=0, description="seconds after which an evaluator times "
                                   "its reference again, before its next evaluation (0: before every one)")
    cascade: CascadeConfig | None = Field(default=None, description="a cheap stage (fewer tasks, a shallower "
                                          "tower) that gates the full evaluation")

    @property
    def calibration(self) -> float | None:
        """How often an evaluator times its reference (seconds), or None: not calibrated."""
        return self.calibrate_every if self.calibrate else None


class SpeciesConfig(_Model):
    name: str = Field(description="species plug-in: tower | accordion | numeric | package.module:Class")
    # JSON values whose shape is the species' own (its constructor checks them): Any
    params: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the species")
    # each may be set per species (a run with several species); unset, the run's own applies
    population: PopulationConfig | None = None
    algorithm: AlgorithmConfig | None = None
    objectives: list[ObjectiveConfig] | None = None
    constraints: list[ConstraintConfig] | None = None
    evaluation: EvaluationConfig | None = None


def _species_shape(value: object) -> str:
    return SPECIES_LIST if isinstance(value, list) else SPECIES_ONE


SPECIES_ONE, SPECIES_LIST = "species-mapping", "species-list"  # union tags, dropped from error paths
SpeciesField = Annotated[
    Annotated[SpeciesConfig, Tag(SPECIES_ONE)] | Annotated[list[SpeciesConfig], Tag(SPECIES_LIST)],
    Discriminator(_species_shape)]


class OpenAIExpertConfig(_Model):
    base_url: str | None = Field(default=None, max_length=2000,
                                 description="an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 "
                                             "(default: OPENAI_BASE_URL where the evaluation runs)")
    model: str | None = Field(default=None, min_length=1, max_length=200,
                              description="model name (default: TOWER_EXPERT_MODEL, else 'default')")
    timeout: float = Field(default=30.0, gt=0, le=600, description="seconds per attempt")
    retries: int = Field(default=4, ge=0, le=10, description="attempts after the first, on 429/5xx/no answer")
    concurrency: int = Field(default=2, ge=1, le=64, description="requests in flight to the endpoint")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith(("http://", "https://")) and value.isprintable()
                                      and " " not in value):
            raise ValueError(f"must be an http(s) URL such as http://127.0.0.1:8000/v1 (got {value!r})")
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        if value is not None and not value.isprintable():
            raise ValueError("must be one printable line")
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_key(cls, data: object) -> object:
        if isinstance(data, Mapping) and ("api_key" in data or "key" in data):
            raise ValueError("api_key is refused: the key is read from OPENAI_API_KEY where the evaluation runs, "
                             "never from a config")
        return data


class AccordionExpertConfig(_Model):
    checkpoint: str | None = Field(default=None, min_length=1, description="MicroAccordion checkpoint file where "
                                   "the evaluation runs (default: TOWER_ACCORDION_CHECKPOINT)")


class ExpertsConfig(_Model):
    """Where expert backends' model calls go: the run's, never a genome's or a harness's."""

    openai: OpenAIExpertConfig = OpenAIExpertConfig()
    accordion: AccordionExpertConfig = AccordionExpertConfig()

    def to_mapping(self) -> dict[str, Any]:  # JSON values
        """The section as `harness_tower.backends.relay.ExpertEndpoints.from_config` takes it
        (unset endpoints left out: the evaluating process's environment fills them)."""
        return self.model_dump(mode="json", exclude_none=True)


ENDPOINTS = ("openai", "accordion")  # the expert endpoints of `experts:` (harness_tower.backends.relay.RELAYED)
PositiveTokens = Annotated[int, Field(gt=0)]


class BudgetConfig(_Model):
    """Limits on what a run may spend (`evolve.budget`); the run stops cleanly between
    generations once one is reached and `--resume` goes on under a raised one."""

    evaluations: int | None = Field(default=None, gt=0, description="evaluations run (offspring not already "
                                    "evaluated in the run, and re-evaluations of front members)")
    wall_seconds: float | None = Field(default=None, gt=0, description="engine time of the run, every session")
    expert_tokens: dict[Literal["openai", "accordion"], PositiveTokens] | None = Field(
        default=None, description="prompt + completion tokens per expert endpoint (evaluations and reflection)")

    @property
    def limits(self) -> dict[str, float]:
        """Every limit set, by the name `evolve.budget.Spend.figures` gives its spend."""
        out: dict[str, float] = {}
        if self.evaluations is not None:
            out["evaluations"] = self.evaluations
        if self.wall_seconds is not None:
            out["wall_seconds"] = self.wall_seconds
        for endpoint, tokens in (self.expert_tokens or {}).items():
            out[f"expert_tokens.{endpoint}"] = tokens
        return out


class IslandsConfig(_Model):
    """Several populations of the species side by side (`evolve.islands`): each the
    configured population, migrating their best along a ring."""

    count: int = Field(default=1, ge=1, le=64, description="populations side by side (1: one population)")
    interval: int = Field(default=5, ge=1, description="generations between migrations")
    migrants: int = Field(default=1, ge=1, description="individuals each island sends to the next on the ring")


class RayConfig(_Model):
    address: str | None = Field(default=None, description="cluster address; RAY_ADDRESS and --address win")
    num_cpus: int | None = Field(default=None, ge=1, description="CPUs of the embedded local Ray")


class RunConfig(_Model):
    name: str = Field(default="run", pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = Field(default=0, ge=0, lt=2**63)
    generations: int = Field(ge=1, description="generations including the initial one")
    species: SpeciesField = Field(description="one species, or a list of them evolving side by side")
    population: PopulationConfig | None = Field(default=None, description="required unless every species has its own")
    algorithm: AlgorithmConfig = AlgorithmConfig()
    objectives: list[ObjectiveConfig] | None = None
    constraints: list[ConstraintConfig] | None = None
    evaluation: EvaluationConfig = EvaluationConfig()
    experts: ExpertsConfig | None = Field(default=None, description="model endpoints of the expert backends "
                                          "(default: the evaluating process's environment)")
    ray: RayConfig = RayConfig()
    islands: IslandsConfig = Field(default=IslandsConfig(), description="several populations migrating along "
                                   "a ring (one species only)")
    budget: BudgetConfig = Field(default=BudgetConfig(), description="limits on evaluations, wall time and "
                                 "expert tokens; may be raised on --resume")

    def to_json_data(self) -> dict[str, Any]:  # JSON values, as stored with the run
        return self.model_dump(mode="json")

    @property
    def species_list(self) -> list[SpeciesConfig]:
        return list(self.species) if isinstance(self.species, list) else [self.species]

    @property
    def several(self) -> bool:
        """A run with a list of species (individual ids then carry the species' name)."""
        return isinstance(self.species, list)


# --- loading ----------------------------------------------------------------------------
def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML run config; every problem is one EvolveError line."""
    import yaml  # type: ignore[import-untyped]  # PyYAML ships no type information

    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvolveError(f"{where}: no such config file") from None
    except IsADirectoryError:
        raise EvolveError(f"{where}: is a directory, not a config file") from None
    except UnicodeDecodeError:
        raise EvolveError(f"{where}: not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise EvolveError(f"{where}: not valid YAML{at}: {problem}") from None
    if not isinstance(data, Mapping):
        raise EvolveError(f"{where}: expected a mapping of fields at the top level, got {type(data).__name__}")
    return parse_config(data, where=where)


def parse_config(data: Mapping[str, object], *, where: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise EvolveError(f"{where}: {format_errors(exc)}") from None


def format_errors(exc: ValidationError, limit: int = 3) -> str:
    errors = exc.errors()
    parts = [_format_one(e) for e in errors[:limit]]
    if len(errors) > limit:
        parts.append(f"(and {len(errors) - limit} more)")
    return "; ".join(parts)


def _loc(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _format_one(err: ErrorDetails) -> str:
    loc = [p for p in err["loc"] if p not in ("function-after", "[key]", SPECIES_ONE, SPECIES_LIST)]
    kind, ctx, got = err["type"], err.get("ctx") or {}, err["input"]
    field = _loc(loc)
    if kind == "missing":
        return f"{field}: is required"
    if kind == "extra_forbidden":
        known = _known_fields(loc[:-1])
        hint = f" (known: {', '.join(known)})" if known else ""
        return f"{field}: unknown field{hint}"
    bounds = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"),
              "less_than_equal": ("<=", "le"), "less_than": ("<", "lt")}
    if kind in bounds:
        op, key = bounds[kind]
        return f"{field}: must be {op} {ctx.get(key)} (got {got!r})"
    if kind == "literal_error":
        return f"{field}: must be one of {ctx.get('expected')} (got {got!r})"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{field}: must be an integer (got {got!r})"
    if kind in ("float_parsing", "float_type"):
        return f"{field}: must be a number (got {got!r})"
    if kind in ("bool_parsing", "bool_type"):
        return f"{field}: must be true or false (got {got!r})"
    if kind in ("string_type",):
        return f"{field}: must be a string (got {got!r})"
    if kind == "string_pattern_mismatch":
        return f"{field}: must match {ctx.get('pattern')} (got {got!r})"
    if field == "species" and kind in ("model_type", "union_tag_invalid"):
        return f"{field}: must be a mapping of fields or a list of them (got {type(got).__name__})"
    if kind in ("model_type", "dict_type"):
        return f"{field}: must be a mapping of fields (got {type(got).__name__})"
    if kind == "list_type":
        return f"{field}: must be a list (got {type(got).__name__})"
    msg = err["msg"] or "invalid"
    msg = msg.removeprefix("Value error, ")
    return f"{field}: {msg[:1].lower() + msg[1:]}"


def _known_fields(loc: Sequence[int | str]) -> list[str]:
    model: type[BaseModel] | None = RunConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return []
        model = _model_of(field.annotation)
    return list(model.model_fields) if model is not None else []


def _model_of(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None


# --- resolving against the species --------------------------------------------------------
# A species of any genome type: the engine moves genomes around and never looks inside one.
AnySpecies: TypeAlias = "Species[Any]"


@dataclass(frozen=True)
class SpeciesPart:
    """One species of a run, bound to its settings: objectives with directions, constraints,
    population, algorithm and evaluation (its own, else the run's)."""

    species: AnySpecies
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]
    population: PopulationConfig
    algorithm: AlgorithmConfig
    evaluation: EvaluationConfig

    @property
    def name(self) -> str:
        return str(self.species.name)

    @property
    def ref_point(self) -> np.ndarray | None:
        """The hypervolume reference in minimisation form, or None when not configured."""
        import numpy as np

        ref = [None if o.ref is None else o.sign * o.ref for o in self.objectives]
        return None if None in ref else np.array(ref, dtype=float)


@dataclass(frozen=True)
class Resolved:
    """The config bound to its species: one part per species of the run, in config order
    (a run of one species has one)."""

    config: RunConfig
    parts: tuple[SpeciesPart, ...]


def resolve(cfg: RunConfig, *, where: str = "config") -> Resolved:
    """Build the species and check objectives/constraints against them (one-line errors)."""
    several = cfg.several
    if several:
        if not cfg.species_list:
            raise EvolveError(f"{where}: species: give at least one species")
        if cfg.objectives is not None or cfg.constraints is not None:
            field = "objectives" if cfg.objectives is not None else "constraints"
            raise EvolveError(f"{where}: {field}: in a run with a list of species, give each species its own "
                              f"(species[k].{field})")
    if cfg.islands.count > 1 and several:
        raise EvolveError(f"{where}: islands.count: islands evolve a run of one species; this run lists "
                          f"{len(cfg.species_list)}")
    parts = []
    seen: dict[str, int] = {}
    for k, sc in enumerate(cfg.species_list):
        at = f"species[{k}]" if several else "species"
        part = _resolve_one(cfg, sc, at=at, where=where, several=several)
        if part.name in seen:
            raise EvolveError(f"{where}: {at}.name: species {part.name} is listed twice "
                              f"(also species[{seen[part.name]}])")
        seen[part.name] = k
        parts.append(part)
    return Resolved(cfg, tuple(parts))


def _resolve_one(cfg: RunConfig, sc: SpeciesConfig, *, at: str, where: str, several: bool) -> SpeciesPart:
    from populations import make_species
    from populations.errors import SpeciesError
    from populations.objectives import Constraint, Objective

    try:
        species = make_species(sc.name, sc.params)
    except SpeciesError as exc:
        about_name = any(s in exc.message for s in ("unknown species", "plug-in", "not a Species"))
        field = f"{at}.name" if about_name else f"{at}.params"
        raise EvolveError(f"{where}: {field}: {exc}") from None
    species.use_experts(cfg.experts.to_mapping() if cfg.experts is not None else None)
    species.use_seed(cfg.seed)

    evaluation = sc.evaluation or cfg.evaluation
    if evaluation.actors == 0 and not (species.in_driver and not species.accelerated):
        ev_at = f"{at}.evaluation" if sc.evaluation is not None else "evaluation"
        raise EvolveError(f"{where}: {ev_at}.actors: 0 (evaluate in the driver) is only for species whose "
                          f"evaluation is cheap and pure (numeric); species {species.name} needs evaluator "
                          "actors: set it to 1 or more, or leave it out")

    population = sc.population or cfg.population
    if cfg.islands.count > 1 and population is not None and cfg.islands.migrants > population.size:
        raise EvolveError(f"{where}: islands.migrants: must be <= population.size ({cfg.islands.migrants} > "
                          f"{population.size}): an island holds {population.size}")
    if cfg.islands.count > 1 and evaluation.replicates > 1:
        ev_at = f"{at}.evaluation" if sc.evaluation is not None else "evaluation"
        raise EvolveError(f"{where}: {ev_at}.replicates: re-evaluation and islands do not go together yet; "
                          "set one of them to 1 (islands.count or replicates)")
    if evaluation.min_samples > evaluation.replicates:
        ev_at = f"{at}.evaluation" if sc.evaluation is not None else "evaluation"
        raise EvolveError(f"{where}: {ev_at}.min_samples: must be <= {ev_at}.replicates "
                          f"({evaluation.min_samples} > {evaluation.replicates}): no individual would get that many "
                          "samples")

    if evaluation.calibrate and not species.timing:
        ev_at = f"{at}.evaluation" if sc.evaluation is not None else "evaluation"
        raise EvolveError(f"{where}: {ev_at}.calibrate: species {species.name} reports no timing metric to calibrate")
    if evaluation.cascade is not None:
        _check_cascade(species, evaluation.cascade,
                       f"{where}: {at + '.evaluation' if sc.evaluation is not None else 'evaluation'}.cascade")

    if population is None:
        raise EvolveError(f"{where}: population: is required" + (
            f" (or give {at} its own population)" if several else ""))

    # where objectives/constraints come from, for error paths: the species' own or the run's
    obj_at = f"{at}.objectives" if sc.objectives is not None else "objectives"
    con_at = f"{at}.constraints" if sc.constraints is not None else "constraints"
    obj_given = sc.objectives if sc.objectives is not None else cfg.objectives
    con_given = sc.constraints if sc.constraints is not None else cfg.constraints

    objectives = []
    obj_cfgs = obj_given if obj_given is not None else [ObjectiveConfig(metric=m) for m in species.default_objectives()]
    if not obj_cfgs:
        raise EvolveError(f"{where}: {obj_at}: is required for species {species.name}")
    for k, oc in enumerate(obj_cfgs):
        why = species.check_metric(oc.metric)
        if why:
            raise EvolveError(f"{where}: {obj_at}[{k}].metric: {why}")
        direction = oc.direction or species.direction(oc.metric)
        if direction is None:
            raise EvolveError(f"{where}: {obj_at}[{k}].direction: {oc.metric} has no natural direction; "
                              "set direction: min or max")
        objectives.append(Objective(oc.metric, direction, oc.ref))
    if len({o.metric for o in objectives}) != len(objectives):
        raise EvolveError(f"{where}: {obj_at}: a metric is listed twice")

    constraints = [Constraint(c.metric, c.le, c.ge, c.eq) for c in (con_given or [])]
    for k, c in enumerate(constraints):
        why = species.check_metric(c.metric)
        if why:
            raise EvolveError(f"{where}: {con_at}[{k}].metric: {why}")
    if con_given is None:
        constraints = list(species.default_constraints())
    return SpeciesPart(species, tuple(objectives), tuple(constraints), population,
                       sc.algorithm or cfg.algorithm, evaluation)


def _check_cascade(species: Species[Any], cascade: CascadeConfig, at: str) -> None:
    """A cascade the species can run: a cheaper stage it can make, a metric it reports, a
    threshold inside that metric's range (one line naming the field otherwise)."""
    why = species.check_stage(cascade.tasks, cascade.depth)
    if why:
        field, _, text = why.partition(": ")
        raise EvolveError(f"{at}.{field}: {text}")
    why = species.check_metric(cascade.metric)
    if why:
        raise EvolveError(f"{at}.metric: {why}")
    low, high = species.metric_range(cascade.metric)
    for name, value in (("min", cascade.min), ("max", cascade.max)):
        if value is not None and not low <= value <= high:
            raise EvolveError(f"{at}.{name}: {value:g} is outside {cascade.metric}'s range {low:g}..{high:g}")
