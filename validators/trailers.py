"""A key commit's message: the session in its subject and its `Keys`/`Kind`/`Seq`/`Time` trailers.

>>> m = parse_message('h2_writer: cat > h1.py\\n\\nKeys: "cat > h1.py"\\nKind: text\\nSeq: 1\\nTime: 1.5\\n')
>>> m.session, m.trailers.keys(), m.trailers.kind, m.trailers.seq(), m.trailers.time()
('h2_writer', 'cat > h1.py', 'text', 1, Decimal('1.5'))
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal

TRAILER_NAMES = ("Keys", "Kind", "Seq", "Time")

_SESSION = re.compile(r"^([^\s:]+):")
_SEQ = re.compile(r"^[0-9]+$")
_TIME = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")


@dataclass(frozen=True)
class Trailers:
    """The raw trailer values of one message (first occurrence of each) and the repeated names."""

    fields: dict[str, str] = field(default_factory=dict)
    repeated: frozenset[str] = frozenset()

    @property
    def kind(self) -> str | None:
        return self.fields.get("Kind")

    def keys(self) -> str | None:
        """The decoded `Keys` JSON string; None when missing, not JSON, or not a string."""
        raw = self.fields.get("Keys")
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, str) else None

    def seq(self) -> int | None:
        """`Seq` as an int; None when missing or not a plain non-negative integer."""
        raw = self.fields.get("Seq")
        return int(raw) if raw is not None and _SEQ.match(raw) else None

    def time(self) -> Decimal | None:
        """`Time` as an exact decimal of unix seconds; None when missing or unparseable."""
        raw = self.fields.get("Time")
        return Decimal(raw) if raw is not None and _TIME.match(raw) else None


@dataclass(frozen=True)
class Message:
    """A commit message split into subject, session prefix (None if absent) and trailers."""

    subject: str
    session: str | None
    trailers: Trailers


def parse_message(text: str) -> Message:
    """Split a commit message; trailer lines are read from every line after the subject."""
    lines = text.split("\n")
    subject = lines[0].strip()
    match = _SESSION.match(subject)
    fields: dict[str, str] = {}
    repeated: set[str] = set()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or name not in TRAILER_NAMES:
            continue
        value = value.strip(" \t")
        if name in fields:
            repeated.add(name)
        else:
            fields[name] = value
    return Message(subject, match.group(1) if match else None, Trailers(fields, frozenset(repeated)))


def label_of(session: str) -> str:
    """The rank label of a session: `h{n}_writer` -> `h{n}`; any other name is its own label.

    >>> label_of("h3_writer"), label_of("driver")
    ('h3', 'driver')
    """
    match = re.fullmatch(r"(h[0-9]+)_writer", session)
    return match.group(1) if match else session
