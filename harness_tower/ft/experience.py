"""Experience: (query, key, value, weight) rows, retrieved by Jaccard similarity of query
keywords (the weight a prior), top-k; and the expert backends that may translate it.

Experience is inline in every harness as a heredoc of `Q:/K:/V:/W:` blocks split by `---`,
so that `code_bytes` honestly measures what a harness knows.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from harness_tower.errors import GraphError


def keywords(text: str) -> frozenset[str]:
    return frozenset(t for t in re.split(r"[\s:]+", text.lower()) if t)


class Experience:
    """A QKV table. Inline in the harness as a heredoc of `Q:/K:/V:/W:` blocks split by `---`."""

    def __init__(self, rows: Sequence[tuple[str, str, str, float]]) -> None:
        self.rows = list(rows)
        self._keys = [keywords(q) for q, _, _, _ in self.rows]

    @classmethod
    def parse(cls, text: str) -> Experience:
        rows: list[tuple[str, str, str, float]] = []
        for block in re.split(r"^---$", text, flags=re.MULTILINE):
            fields: dict[str, str] = {}
            for line in block.split("\n"):
                if len(line) >= 2 and line[1] == ":" and line[0] in "QKVW":
                    raw = line[2:].strip()
                    fields[line[0]] = json.loads(raw) if raw.startswith('"') else raw
            if "V" in fields:
                rows.append((fields.get("Q", ""), fields.get("K", ""), fields["V"], float(fields.get("W", 1.0))))
        return cls(rows)

    def ranked(self, query: str, topk: int) -> list[tuple[float, int]]:
        q = keywords(query)
        scored = []
        for i, k in enumerate(self._keys):
            union = len(q | k)
            jac = len(q & k) / union if union else 0.0
            scored.append((jac * self.rows[i][3], i))
        # Among equal scores a row whose query is the query verbatim comes first: keyword sets
        # lose order and repetition, and the expert content source needs exact contexts to win.
        scored.sort(key=lambda s: (-s[0], self.rows[s[1]][0] != query, s[1]))
        return [s for s in scored[:topk] if s[0] > 0]

    def retrieve(self, query: str, topk: int = 1) -> str | None:
        """The value with the highest summed score among the top-k rows (None: no match)."""
        votes: dict[str, float] = {}
        first: dict[str, int] = {}
        exact: set[str] = set()
        for score, i in self.ranked(query, topk):
            value = self.rows[i][2]
            votes[value] = votes.get(value, 0.0) + score
            first.setdefault(value, i)
            if self.rows[i][0] == query:
                exact.add(value)
        if not votes:
            return None
        return max(votes, key=lambda v: (votes[v], v in exact, -first[v]))


# What an expert asks a backend: (experience, query, top-k) -> a value, or None (no match).
Translate = Callable[[Experience, str, int], str | None]


def load_backend(name: str, config: dict[str, Any] | None = None) -> Translate:
    """The translate function of a backend: `retrieval` inline, the others from
    `harness_tower.backends.<name>` (loaded only when used, so that a harness that retrieves
    imports nothing more). With a config, the module's `backend(config)` builds it; without,
    its `translate` reads its settings from the environment."""
    if name == "retrieval":
        return lambda exp, query, topk: exp.retrieve(query, topk)
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name or ""):
        raise GraphError(f"unknown expert backend {name!r}")
    try:
        module = __import__(f"harness_tower.backends.{name}", fromlist=["translate"])
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("harness_tower.backends"):
            raise GraphError(f"unknown expert backend {name!r}") from None
        raise GraphError(f"expert backend {name!r} needs {exc.name!r}, which is not installed") from None
    # a module found by name: what it gives is typed here, where the contract is
    translate: Translate = module.backend(config) if config else module.translate
    return translate
