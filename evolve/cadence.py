"""When the engine pays for durability and display: one object owns every throttle.

Each throttle trades a fixed cost against what a crash or a reader would miss:

- staging (one small transaction) keeps an evaluation that finished inside a running
  generation: done at once for evaluations that cost more than `worth` seconds (towers),
  and otherwise in bulk at most every `stage_every` seconds (cheap vectorised problems,
  where a lost second of work is cheaper than a transaction per evaluation);
- a checkpoint costs a pickle of every species' algorithm, replaying a generation one
  ask/tell: towers checkpoint every generation, cheap problems every `checkpoint_every`
  seconds (and the last generation always);
- a generation is committed at once when it took `commit_every` seconds or more (towers);
  cheaper ones are gathered and committed together at most `commit_every` seconds apart
  (a statement's fixed cost dominates a 100-row insert);
- the status file for `evolve status` is written at most every `status_every` seconds,
  and after every generation that cost `worth` seconds or more.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Cadence:
    worth: float = 0.25
    stage_every: float = 1.0
    checkpoint_every: float = 5.0
    commit_every: float = 1.0
    status_every: float = 0.5
    clock: Callable[[], float] = time.monotonic  # seconds; any monotonic clock
    # when each was last done (by `clock`)
    _staged: float = field(init=False, repr=False)
    _checkpointed: float = field(init=False, repr=False)
    _committed: float = field(init=False, repr=False)
    _status: float = field(init=False, repr=False, default=-math.inf)

    def __post_init__(self) -> None:
        self._staged = self._checkpointed = self._committed = self.clock()

    # --- is it time? ------------------------------------------------------------------------
    def stage_now(self, wall_seconds: float) -> bool:
        """Whether to stage what has landed, the last evaluation having cost `wall_seconds`."""
        return wall_seconds >= self.worth or self.clock() - self._staged >= self.stage_every

    def checkpoint_now(self, *, last: bool) -> bool:
        return last or self.clock() - self._checkpointed >= self.checkpoint_every

    def commit_now(self, generation_seconds: float, *, last: bool) -> bool:
        return (last or generation_seconds >= self.commit_every
                or self.clock() - self._committed >= self.commit_every)

    def status_now(self, generation_seconds: float = 0.0) -> bool:
        return generation_seconds >= self.worth or self.clock() - self._status >= self.status_every

    # --- it was done (whether it was time or not) ---------------------------------------------
    def generation_started(self) -> None:
        """Staging counts from the start of each generation's evaluations."""
        self._staged = self.clock()

    def staged(self) -> None:
        self._staged = self.clock()

    def checkpointed(self) -> None:
        self._checkpointed = self.clock()

    def committed(self) -> None:
        self._committed = self.clock()

    def status_written(self) -> None:
        self._status = self.clock()
