"""The piecewise parse check agrees with `ast.parse` of the whole file, always."""
from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from validators.parsecheck import ParseCache, cut_points, parses

TRICKY = {
    "decorator before def": b"import os\n@d\ndef f():\n    pass\n",
    "dangling decorator": b"x = 1\n@d\n",
    "else after if": b"if x:\n    pass\nelse:\n    pass\n",
    "try clauses": b"try:\n    pass\nexcept E:\n    pass\nfinally:\n    pass\n",
    "else_ is a name": b"if x:\n    pass\nelse_ = 1\n",
    "lonely else": b"x = 1\nelse:\n    pass\n",
    "continuation": b"x = 1 + \\\n2\ny = 3\n",
    "brackets across lines": b"x = (1,\n2)\ny = [\n]\n",
    "unbalanced close": b"x = 1)\ny = 2\n",
    "triple string with code": b's = """\nx = (\n@d\n"""\ny = 1\n',
    "unterminated triple": b"s = '''abc\nx = 1\ny = 'q'\n",
    "unterminated single": b"s = 'abc\nx = 1\n",
    "escaped quote": b"s = 'a\\'b'\nx = (\n",
    "raw escaped quote": b"s = r'a\\'b'\nx = 1\n",
    "comment with quote": b"# it's fine\nx = 1\n",
    "comment backslash": b"x = 1  # \\\ny = 2\n",
    "bom": b"\xef\xbb\xbf@d\ndef f(): pass\n",
    "latin-1 cookie": b"# coding: latin-1\ns = '\xe9'\nx = 1\n",
    "form feed column": b"x = 1\n\x0c@d\ndef f(): pass\n",
    "carriage returns": b"x = 1\r@d\rdef f(): pass\r",
    "nul byte": b"x = 1\ny = \x00\n",
    "invalid utf-8 late": b"x = 1\ny = 2\n# \xff\n",
    "barry": b"from __future__ import barry_as_FLUFL\nx = 1 <> 2\n",
    "indented start": b"x = 1\n  y = 2\n",
    "match statement": b"match x:\n    case 1:\n        pass\ny = 1\n",
    "case at column 0": b"match x:\n    case 1:\n        pass\ncase 2:\n    pass\n",
    "fstring": b"x = f'{a!r:>{w}}'\ny = (\n",
    "backslash at eof": b"x = 1\\",
    "empty": b"",
}


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_tricky_sources_agree_with_whole_parse(name: str) -> None:
    data = TRICKY[name]
    assert ParseCache().valid(data) == parses(data)


def test_cuts_never_split_a_decorator_or_a_clause() -> None:
    src = b"import os\n@d\n@e\ndef f():\n    pass\nif x:\n    y\nelse:\n    z\nclass A:\n    pass\n"
    pieces = [src[a:b] for a, b in zip([0, *cut_points(src)], [*cut_points(src), len(src)])]
    assert pieces == [b"import os\n", b"@d\n@e\ndef f():\n    pass\n", b"if x:\n    y\nelse:\n    z\n",
                      b"class A:\n    pass\n"]


def _mutants(rng: random.Random, sources: list[bytes], count: int):
    alphabet = [b"'", b'"', b"'''", b'"""', b"\\", b"\n", b"(", b")", b"[", b"]", b"#", b"@d\n",
                b"else:\n", b"except:\n", b"    ", b"\t", b"def f():\n", b"\xff", b"\xc3\xa9",
                b"x", b":", b"\\\n", b"\nclass A:\n", b"\x0c", b"\r", b"f'{", b"r'\\'"]
    for _ in range(count):
        data = rng.choice(sources)
        for _ in range(rng.randrange(1, 4)):
            pos = rng.randrange(len(data) + 1)
            roll = rng.random()
            if roll < 0.5:
                data = data[:pos] + rng.choice(alphabet) + data[pos:]
            elif roll < 0.8:
                data = data[:pos] + data[pos + rng.randrange(1, 30):]
            else:
                data = data[:pos]
        yield data


def test_mutated_sources_agree_with_whole_parse() -> None:
    root = Path(random.__file__).parent   # the standard library: real, varied Python
    sources = [p.read_bytes()[:6000] for p in sorted(root.glob("[a-f]*.py"))[:40]]
    sources += list(TRICKY.values())
    rng = random.Random(20260522)
    cache = ParseCache()
    previous = None
    seen = {True: 0, False: 0}
    for data in _mutants(rng, sources, 1500):
        got = cache.valid(data, previous)
        assert got == parses(data), data
        seen[got] += 1
        previous = data
    assert seen[True] > 100 and seen[False] > 100   # both answers were exercised


def test_typing_a_file_agrees_at_every_keystroke() -> None:
    source = Path(random.__file__).read_bytes()[:12000]
    cache = ParseCache()
    previous = None
    for end in range(0, len(source), 37):
        data = source[:end]
        assert cache.valid(data, previous) == parses(data), end
        previous = data


def test_parses_ignores_warnings_and_null_bytes() -> None:
    assert parses(b"s = '\\d'\n")           # invalid escape: a warning, still parses
    assert not parses(b"x = 1\x00\n")       # ValueError on 3.11, SyntaxError later
    assert sys.version_info >= (3, 11)
