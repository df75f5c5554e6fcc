"""Does a file parse with `ast.parse`? Exact answers, fast along a typing history.

Typing a file produces thousands of versions that differ near the cursor only. Parsing each
version whole costs O(size) of C parser plus AST objects every time. Instead a version is cut
at *top-level statement boundaries* and each piece is parsed alone, with results cached by
piece content: only the piece being typed is new.

Why that is exact: at a boundary the tokenizer is in its base state (no open bracket or
string, no backslash continuation, column 0), so the token stream of the whole is the
pieces' streams concatenated, and `file: statement* ENDMARKER` holds for the whole exactly
when it holds for every piece, provided no statement spans the cut. The only statements
that continue across a column-0 line are decorators (`@d` then `def`) and the clauses
`else`/`elif`/`except`/`finally`, so a line is never cut after a decorator nor before such
a clause. Where the context-free picture could fail (a coding cookie, a BOM, form feeds or
bare carriage returns that move columns and lines, `barry_as_FLUFL`, PEP 701 f-strings on
Python >= 3.12) or the scanner meets anything it does not model, cutting stops and the rest
is parsed in one piece. Not cutting is always exact; `tests/validators` compares both ways
on thousands of mutated sources.

>>> cache = ParseCache()
>>> cache.valid(b"def f():\\n    return 1\\nx = f(\\n"), cache.valid(b"x = 1\\n")
(False, True)
"""
from __future__ import annotations

import ast
import itertools
import re
import sys
import warnings

from rapidfuzz.distance import Prefix

# One alternative per lexical construct that changes the tokenizer's state. Strings are
# matched whole (a backslash skips the next character, raw or not, as the tokenizer does);
# an opener without its closer is an anomaly that stops cutting.
_SCAN = re.compile(
    rb"""
      (?P<str3>'''[^'\\]*(?:(?:\\.|'(?!''))[^'\\]*)*'''
             |\"\"\"[^"\\]*(?:(?:\\.|"(?!""))[^"\\]*)*\"\"\")
    | (?P<bad3>'''|\"\"\")
    | (?P<str>'[^'\\\n]*(?:\\.[^'\\\n]*)*'
            |"[^"\\\n]*(?:\\.[^"\\\n]*)*")
    | (?P<com>\#[^\n]*)
    | (?P<open>[(\[{])
    | (?P<close>[)\]}])
    | (?P<cont>\\\n)
    | (?P<nl>\n)
    | (?P<bad>['"\\])
    """,
    re.VERBOSE | re.DOTALL,
)

_CLAUSE = re.compile(rb"(?:else|elif|except|finally)\b")
_CODING = re.compile(rb"coding[:=]")
_COMMENT_START = re.compile(rb"[ \t\f]*#")
_NO_CUT_BYTES = (b"\r", b"\f", b"\0", b"barry_as_FLUFL")
_BOM = b"\xef\xbb\xbf"
# First bytes of a column-0 line that may start a piece: printable ASCII that is not a
# comment, a continuation or a closing bracket.
_STARTS = frozenset(set(range(0x21, 0x7F)) - set(b"#\\)]}"))
_AT = ord("@")
_SPACE = frozenset(b" \t\n#")
_FSTRING_TOKENS = sys.version_info >= (3, 12)  # PEP 701: f-strings nest quotes


def parses(data: bytes) -> bool:
    """True when `ast.parse(data)` succeeds (warnings silenced, any failure is False).

    >>> parses(b"x = (1,\\n"), parses(b"")
    (False, True)
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ast.parse(data)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return False
    return True


def _cuttable(data: bytes) -> bool:
    if data.startswith(_BOM) or any(b in data for b in _NO_CUT_BYTES):
        return False
    # A comment line that mentions `coding:`/`coding=` could be an encoding cookie (for the
    # whole file, or for a piece where it lands on the piece's second line): don't cut.
    for hit in _CODING.finditer(data):
        line = data.rfind(b"\n", 0, hit.start()) + 1
        if _COMMENT_START.match(data, line, hit.start()):
            return False
    return True


def scan(data: bytes, start: int = 0) -> tuple[list[int], bool]:
    """Cut points after `start`, and whether the scan met a certain tokenizer error.

    `start` must be 0 or a cut point of `data` itself (the scan resumes there). The error
    flag is set for what the tokenizer always rejects: an unterminated string, a stray
    backslash, an unmatched closing bracket, or a bracket still open at the end. Up to the
    first real error the scan and the tokenizer agree, so the flag is never wrong.

    >>> scan(b"import os\\n@d\\ndef f():\\n    pass\\nelse_ = 1\\n")
    ([10, 31], False)
    >>> scan(b"x = 1\\ny = f(2,\\n")
    ([6], True)
    """
    cuts: list[int] = []
    depth = 0
    decorator = False
    n = len(data)

    def line_start(at: int) -> None:
        nonlocal decorator
        if at >= n or data[at] in _SPACE:
            return  # blank, comment-only or indented: not a top-level statement
        first = data[at]
        if (at > start and not decorator and first in _STARTS
                and _CLAUSE.match(data, at) is None):
            cuts.append(at)
        decorator = first == _AT

    def f_prefix(at: int) -> bool:
        return _FSTRING_TOKENS and b"f" in data[max(start, at - 2):at].lower()

    line_start(start)
    for m in _SCAN.finditer(data, start):
        kind = m.lastgroup
        if kind == "nl":
            if depth == 0:
                line_start(m.end())
        elif kind == "open":
            depth += 1
        elif kind == "close":
            depth -= 1
            if depth < 0:
                return cuts, True
        elif kind == "str" or kind == "str3":
            if f_prefix(m.start()):
                return cuts, False   # PEP 701 f-string: not modelled, stop cutting
        elif kind == "bad" or kind == "bad3":
            return cuts, not f_prefix(m.start())
    return cuts, depth > 0


def cut_points(data: bytes, start: int = 0) -> list[int]:
    """Offsets after `start` where a new top-level statement piece may begin.

    >>> cut_points(b"import os\\n@d\\ndef f():\\n    pass\\nelse_ = 1\\n")
    [10, 31]
    """
    return scan(data, start)[0]


class ParseCache:
    """Answers `parses(data)` for many related versions, sharing work between them.

    `valid(data, previous)` reuses the cut points of `previous` (an earlier version of the
    same file, already asked about) up to their common prefix.
    """

    def __init__(self) -> None:
        self._pieces: dict[bytes, bool] = {}
        self._scans: dict[bytes, tuple[list[int], bool]] = {}

    def valid(self, data: bytes, previous: bytes | None = None) -> bool:
        if not _cuttable(data):
            return self._piece(data)
        cuts, broken = self._scan(data, previous)
        if broken:
            return False
        bounds = [0, *cuts, len(data)]
        pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
        known = [self._pieces.get(p) for p in pieces]
        if False in known:
            return False
        return all(self._piece(p) for p, k in zip(pieces, known) if k is None)

    def pieces(self, data: bytes, previous: bytes | None = None) -> list[bytes]:
        """`data` cut into its top-level statement pieces (one piece when it cannot be cut).

        For a version that parses, each piece parses on its own: callers that analyse many
        versions of a file (`self_read`) handle each distinct piece once.

        >>> ParseCache().pieces(b"import os\\nx = 1\\n")
        [b'import os\\n', b'x = 1\\n']
        """
        if not _cuttable(data):
            return [data]
        cuts = self._scan(data, previous)[0]
        bounds = [0, *cuts, len(data)]
        return [data[a:b] for a, b in itertools.pairwise(bounds)]

    def _scan(self, data: bytes, previous: bytes | None) -> tuple[list[int], bool]:
        found = self._scans.get(data)
        if found is not None:
            return found
        kept: list[int] = []
        if previous is not None and previous in self._scans:
            # A cut depends on the bytes before it and a few after (the clause keyword).
            same = Prefix.similarity(previous, data)
            kept = [c for c in self._scans[previous][0] if c + 16 <= same]
        resume = kept[-1] if kept else 0
        cuts, broken = scan(data, resume)
        found = self._scans[data] = (kept + cuts, broken)
        return found

    def _piece(self, piece: bytes) -> bool:
        ok = self._pieces.get(piece)
        if ok is None:
            ok = self._pieces[piece] = parses(piece)
        return ok
