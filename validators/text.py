"""File contents as characters, and the edit size between two versions.

Contents are decoded as UTF-8 with `surrogateescape`, so every byte that is not part of
valid UTF-8 counts as exactly one character and no content is ever refused.

>>> decode(b"caf\\xc3\\xa9 \\xff")
'café \\udcff'
>>> indel_size("hello world", "hello, world!")
2
"""
from __future__ import annotations

from rapidfuzz.distance import Indel, Postfix, Prefix


def decode(data: bytes) -> str:
    """UTF-8 text of `data`; each undecodable byte becomes one lone surrogate character."""
    return data.decode("utf-8", "surrogateescape")


def indel_size(old: str, new: str) -> int:
    """Characters inserted plus characters deleted to turn `old` into `new`.

    The common prefix and suffix are trimmed first, so typing near one spot of a long file
    costs only the changed middle.

    >>> indel_size("", "abc"), indel_size("abc", ""), indel_size("abXc", "abYc")
    (3, 3, 2)
    """
    head = Prefix.similarity(old, new)
    old, new = old[head:], new[head:]
    tail = Postfix.similarity(old, new)
    if tail:
        old, new = old[:-tail], new[:-tail]
    return int(Indel.distance(old, new))
