"""`self_read` (constraint, must be 0): how many `h{n}.py` files read their own source.

A level that reads its own file can print itself instead of knowing how to write its
child. Found with `ast` in each top-level `h{n}.py` of the final commit:

- any reference to `__file__` (name, attribute, or the string `"__file__"`);
- `inspect.getsource*` / `inspect.getfile` (as attributes of `inspect` or imported from it);
- `sys.argv[0]` (or `argv[0]` with `argv` imported from `sys`);
- a string literal naming the file itself (`"h2.py"`, `"./h2.py"`, ...) passed to
  `open`, a `read*` method or `Path` — directly, inside the call's arguments, or through
  a variable assigned that literal.

A file that does not parse is searched as text for the same patterns.

>>> reads_own_source("print(open('h2.py').read())", "h2.py")
True
>>> reads_own_source("run('cat > h1.py')", "h2.py")
False
"""
from __future__ import annotations

import ast
import re
import sys
import warnings

from validators.cli import metric_main
from validators.text import decode
from validators.trajectory import Trajectory

_INSPECT = re.compile(r"getsource\w*|getfile")
_OPENERS = frozenset({"open", "Path", "PurePath", "PosixPath", "read", "read_text",
                      "read_bytes", "readlines", "FileIO", "fdopen", "loadtxt"})


def _names_own(value: object, own: str) -> bool:
    return isinstance(value, str) and value.replace("\\", "/").rsplit("/", 1)[-1] == own


def _call_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


class _Finder(ast.NodeVisitor):
    """Walks one module and sets `found` at the first self-read pattern."""

    def __init__(self, own: str) -> None:
        self.own = own
        self.found = False
        self.inspect_aliases = {"inspect"}
        self.sys_aliases = {"sys"}
        self.argv_names: set[str] = set()
        self.inspect_funcs: set[str] = set()
        self.own_vars: set[str] = set()

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "inspect":
                self.inspect_aliases.add(alias.asname or alias.name)
            elif alias.name == "sys":
                self.sys_aliases.add(alias.asname or alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if node.module == "inspect" and _INSPECT.fullmatch(alias.name):
                self.found = True
            elif node.module == "sys" and alias.name == "argv":
                self.argv_names.add(alias.asname or "argv")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id == "__file__":
            self.found = True

    def visit_Constant(self, node: ast.Constant) -> None:
        if node.value == "__file__":
            self.found = True

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr == "__file__":
            self.found = True
        elif (_INSPECT.fullmatch(node.attr) and isinstance(node.value, ast.Name)
              and node.value.id in self.inspect_aliases):
            self.found = True
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        base = node.value
        is_argv = (isinstance(base, ast.Attribute) and base.attr == "argv"
                   and isinstance(base.value, ast.Name) and base.value.id in self.sys_aliases) or (
                  isinstance(base, ast.Name) and base.id in self.argv_names)
        index = node.slice
        if is_argv and isinstance(index, ast.Constant) and index.value == 0:
            self.found = True
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        if isinstance(node.value, ast.Constant) and _names_own(node.value.value, self.own):
            self.own_vars.update(t.id for t in node.targets if isinstance(t, ast.Name))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if _call_name(node.func) in _OPENERS:
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                for sub in ast.walk(arg):
                    if isinstance(sub, ast.Constant) and _names_own(sub.value, self.own):
                        self.found = True
                    elif isinstance(sub, ast.Name) and sub.id in self.own_vars:
                        self.found = True
        self.generic_visit(node)


def _text_search(source: str, own: str) -> bool:
    """The same patterns as plain text, for a file that does not parse."""
    name = re.escape(own)
    patterns = [r"__file__", r"\b(?:getsource\w*|getfile)\b", r"\bargv\s*\[\s*0\s*\]",
                rf"\b(?:{'|'.join(sorted(_OPENERS))})\s*\([^\n]*['\"](?:[^'\"\n]*/)?{name}['\"]"]
    return any(re.search(p, source) for p in patterns)


def reads_own_source(source: str | bytes, own: str) -> bool:
    """Whether the Python `source` (bytes as stored, or text) of the file `own` reads itself."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        text = source if isinstance(source, str) else decode(source)
        return _text_search(text, own)
    finder = _Finder(own)
    # Bindings first (imports, assignments), then every use, whatever the order in the file.
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            finder.visit_Import(node)
        elif isinstance(node, ast.ImportFrom):
            finder.visit_ImportFrom(node)
        elif isinstance(node, ast.Assign):
            if isinstance(node.value, ast.Constant) and _names_own(node.value.value, own):
                finder.own_vars.update(t.id for t in node.targets if isinstance(t, ast.Name))
    finder.visit(tree)
    return finder.found


def offenders(traj: Trajectory) -> list[str]:
    """Names of the final commit's top-level `h{n}.py` files that read their own source."""
    out = []
    for n, sha in sorted(traj.level_files.items()):
        own = f"h{n}.py"
        if reads_own_source(traj.blob(sha), own):
            out.append(own)
    return out


def compute(traj: Trajectory) -> int:
    """Number of level files that read their own source."""
    return len(offenders(traj))


if __name__ == "__main__":
    sys.exit(metric_main("self_read", compute, per_session=False))
