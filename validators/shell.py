"""Does a shell command line read a given file? (`self_read` asks it of every string.)

A level can read its own source without any Python file API: it types `cat h2.py`, or
`awk ... h[2].py > h1.py`, into its terminal and reads the screen or the result. The words
are split the way a shell would (quotes honoured, `;|&()` and redirections as operators);
a reading command given the file's name, or a glob that matches it, or an input
redirection from it, reads it. Output redirections write and do not count.
"""
from __future__ import annotations

import fnmatch
import re
import shlex

# Shell commands that read the files they are given.
READERS = frozenset({
    "cat", "tac", "nl", "head", "tail", "less", "more", "awk", "gawk", "mawk", "sed", "grep",
    "egrep", "fgrep", "cut", "sort", "uniq", "tr", "od", "xxd", "hexdump", "base64", "cp",
    "mv", "ln", "install", "rsync", "dd", "tee", "paste", "join", "comm", "diff", "cmp", "fold",
    "fmt", "pr", "rev", "strings", "wc", "python", "python3", "perl", "ruby", "source", ".",
    "vi", "vim", "view", "nano", "ed", "ex", "bash", "sh", "tar", "zip", "gzip", "xargs",
})
GLOB = re.compile(r"[*?\[]")
_PUNCTUATION = frozenset("();<>|&")


def _shell_words(line: str) -> list[str]:
    """Shell words and operators of one line (quotes honoured; unbalanced ones tolerated)."""
    for attempt in (line, line + "'", line + '"'):
        lexer = shlex.shlex(attempt, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = ""
        try:
            return list(lexer)
        except ValueError:
            continue
    return line.split()


def shell_reads(command: str, own: str) -> bool:
    """Whether a shell command line reads the file `own`: a reading command (`cat`, `awk`,
    `cp`, ...) given its name or a glob that matches it (`h[2].py`, `h?.py`), or an input
    redirection from it. Output redirections (`cat > h1.py`) do not read.

    >>> shell_reads("awk '/^#B/{f=1;next}f' h[2].py > h1.py", "h2.py")
    True
    >>> shell_reads("cat > h2.py", "h2.py"), shell_reads("python3 h1.py", "h2.py")
    (False, False)
    >>> shell_reads("wc -c < ./h2.py", "h2.py"), shell_reads("echo; cat h?.py", "h2.py")
    (True, True)
    """
    if own not in command and not GLOB.search(command):
        return False
    for line in command.split("\n"):
        if own not in line and not GLOB.search(line):
            continue
        reader = None            # does the current simple command read its arguments?
        redirect = ""
        for word in _shell_words(line):
            if word and set(word) <= _PUNCTUATION:
                if any(c in word for c in ";&|("):
                    reader, redirect = None, ""
                if "<" in word or ">" in word:
                    redirect = word
                continue
            if reader is None and not redirect:
                reader = word.rsplit("/", 1)[-1] in READERS
                continue
            name = word.rsplit("=", 1)[-1].replace("\\", "/").rsplit("/", 1)[-1]  # dd if=
            matches = name == own or (GLOB.search(name) is not None
                                      and fnmatch.fnmatchcase(own, name))
            writes = ">" in redirect
            if matches and not writes and (reader or "<" in redirect):
                return True
            redirect = ""
    return False
