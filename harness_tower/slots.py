"""Slots: the parts of an instruction that one experience row can carry over to many tasks.

An experience value may be a command template such as `wc -l < {file}`; the task level fills
it from the instruction it was given ("How many lines does notes.txt have?" → `wc -l <
notes.txt`). `extract` finds the slot values an instruction names, `fill` puts them into a
template, and `generalise` turns a concrete command back into a template (how rows are
learned from reference solutions and harvested sessions).

Slots, in the order they appear in the instruction (a second one of a kind is `file2`, ...):
- `text`: a quoted string ('...' or "..."), shell-quoted when filled as `{text_q}`;
- `words`: the words an instruction names without quotes ("the words hello world", "the
  line: buy milk", "the word banana in capital letters" → `banana`), up to the end of the
  clause or a word that starts a new part of it (in, into, to, three, spelled, ...);
- `file`: a name with an extension or a path (`notes.txt`, `data/a.csv`, `./run.sh`);
- `dir`: the name after "directory"/"folder" (`directory logs` → `logs`);
- `n`: a whole number.

Standard library only: harness programs import it.

>>> slots = extract("Count the lines of notes.txt that contain 'error'.")
>>> slots["file"], slots["text"]
('notes.txt', 'error')
>>> fill("grep -c {text_q} {file}", slots)
'grep -c error notes.txt'
>>> fill("head -n {n} {file}", slots) is None
True
>>> generalise("grep -c error notes.txt", slots)
'grep -c {text} {file}'
"""
from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping

_QUOTED = re.compile(r"'([^'\n]+)'|\"([^\"\n]+)\"")
_FILE = re.compile(r"(?<![\w/.-])((?:\.{0,2}/)?(?:[\w-]+/)*[\w-]+\.[A-Za-z0-9]{1,5}|(?:\.{0,2}/)?[\w-]+(?:/[\w.-]+)+)"
                   r"(?![\w/-])")
_WORDS = re.compile(r"\bthe\s+(?:single\s+)?(?:words?|text|line|sentence|phrase)\s*:?\s+(.+?)"
                    r"(?=\s+(?:in|into|to|on|at|spelled|followed|separated|three|two|twice|once|and|with|from|for"
                    r"|inside)\b|[.?!,;:](?:\s|$)|$)", re.IGNORECASE)
_DIR = re.compile(r"\b(?:directory|folder|dir)\s+(?:called\s+|named\s+)?([\w.-]+)", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])(\d+)(?![\w.])")
_SLOT = re.compile(r"\{([a-z]+[0-9]*)(_q)?\}")


def extract(instruction: str) -> dict[str, str]:
    """The slot values an instruction names (see the module docstring)."""
    slots: dict[str, str] = {}

    def add(kind: str, value: str) -> None:
        if value in slots.values():
            return
        name, i = kind, 1
        while name in slots:
            i += 1
            name = f"{kind}{i}"
        slots[name] = value

    quoted_spans = []
    for m in _QUOTED.finditer(instruction):
        add("text", m.group(1) if m.group(1) is not None else m.group(2))
        quoted_spans.append(m.span())
    bare = _blank(instruction, quoted_spans)
    for m in _WORDS.finditer(bare):  # named words, like quoted text, hold no other slots
        add("words", m.group(1))
        quoted_spans.append(m.span(1))
    bare = _blank(instruction, quoted_spans)
    for m in _DIR.finditer(bare):
        add("dir", m.group(1).rstrip("."))
    for m in _FILE.finditer(bare):
        add("file", m.group(1))
    for m in _NUMBER.finditer(bare):
        add("n", m.group(1))
    return slots


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with the given spans replaced by spaces (quoted text holds no other slots)."""
    out = list(text)
    for start, end in spans:
        out[start:end] = " " * (end - start)
    return "".join(out)


def fill(template: str, slots: Mapping[str, str]) -> str | None:
    """`template` with its `{slot}` (raw) and `{slot_q}` (shell-quoted) filled; None if it names
    a slot the instruction does not have (the row does not serve this task)."""
    missing = False

    def one(m: re.Match[str]) -> str:
        nonlocal missing
        value = slots.get(m.group(1))
        if value is None:
            missing = True
            return ""
        return shlex.quote(value) if m.group(2) else value

    out = _SLOT.sub(one, template)
    return None if missing else out


def generalise(command: str, slots: Mapping[str, str]) -> str:
    """`command` with the slot values it contains replaced by their `{slot}` names, longest
    values first (so that `notes.txt` is not cut into `{n}` pieces)."""
    out = command
    for name, value in sorted(slots.items(), key=lambda kv: -len(kv[1])):
        quoted = shlex.quote(value)
        if quoted != value and quoted in out:
            out = out.replace(quoted, "{" + name + "_q}")
        else:
            # a function as replacement: the placeholder's braces and backslashes stay literal
            out = re.sub(rf"(?<![\w.{{-]){re.escape(value)}(?![\w}}-])", _constant("{" + name + "}"), out)
    return out


def _constant(text: str) -> Callable[[re.Match[str]], str]:
    return lambda _: text
