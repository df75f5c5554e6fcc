"""`self_read` (constraint, must be 0): how many `h{n}.py` files read their own source.

A level that reads its own file can print itself instead of knowing how to write its child
(SPEC §3: a harness sees the world only through its terminal). The check is static, over
the source as committed, and it covers *every version that could have run*: each version of
the top-level `h{n}.py` in the history that parses (a harness could read itself, then
rewrite its file clean before the final commit). The distinct top-level statements of all
those versions are analysed together, names bound anywhere holding any value bound to them.

A level file counts when any of these appears (the reasons `findings()` gives):

- a name that leads to its own file or code: `__file__`, `__spec__` (`__spec__.origin`),
  `__loader__` (`__loader__.get_source`), `__cached__`, `sys.orig_argv`, `co_filename`,
  `get_source`/`get_code`/`get_data`/`get_filename`, `linecache`, `inspect.getsource*`,
  `getfile`/`getsourcefile`/`getabsfile`/`findsource`/`getcomments` - as a name, an
  attribute, an import, or a string (folded: `getattr(m, '__fi' + 'le__')`);
- `inspect`'s frame functions (`stack`, `currentframe`, ...) and `traceback`'s functions
  that return source lines (`extract_stack`, `format_exc`, ...), from those modules;
- `sys.argv` used other than as `argv[i]`/`argv[i:]` with a constant i >= 1 or `len(argv)`;
- a string mentioning `/proc/self`;
- an opener (`open`, `io.open`, `os.open`, `FileIO`, `Path`, `read_text`, `run_path`,
  `listdir`, `glob`, `copy`, ...) whose path may name the file itself - `open('h1.p'+'y')`,
  `''.join(...)`, f-strings, `%`/`.format` of literals, `chr` sequences all fold
  (`validators.fold`) - or whose path cannot be folded and whose literal parts are all
  pieces of its own name (`open('h' + str(n) + '.py')`, `open(name)`), or mention `/proc/`;
- a shell command (`os.system`, `subprocess.*`) or keys sent to a terminal (`send*`)
  naming the file itself (`cat h2.py`), and any string that is a shell command reading the
  file by name or by a glob matching it (`awk ... h[2].py > h1.py`, `cat h?.py`, `< h2.py`) -
  whatever helper finally types it;
- importing itself (`import h2`, `__import__('h2')`).

A final version that does not parse is searched as text for the same names.

>>> reads_own_source("print(open('h2.p' + 'y').read())", "h2.py")
True
>>> reads_own_source("run('cat > h1.py')", "h2.py")
False
"""
from __future__ import annotations

import ast
import re
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from validators.cli import metric_main
from validators.fold import Folded, Folder
from validators.shell import GLOB, shell_reads
from validators.syntax_ratio import judge
from validators.text import decode
from validators.trajectory import Trajectory, level_of

# Names whose mere use reaches the running file's path or source.
FORBIDDEN = frozenset({
    "__file__", "__spec__", "__loader__", "__cached__", "orig_argv", "co_filename",
    "get_source", "get_code", "get_data", "get_filename", "linecache", "getsource",
    "getsourcelines", "getsourcefile", "getfile", "getabsfile", "findsource", "getcomments",
})
# Functions that reach frames or source lines, counted when taken from their module.
MODULE_FUNCS = {
    "inspect": frozenset({"stack", "trace", "currentframe", "getframeinfo", "getouterframes",
                          "getinnerframes", "getmodule", "getmodulename", "getblock"}),
    "traceback": frozenset({"extract_stack", "extract_tb", "format_stack", "format_tb",
                            "format_exc", "format_exception", "walk_stack", "walk_tb",
                            "StackSummary", "TracebackException", "FrameSummary"}),
}
OPENERS = frozenset({
    "open", "FileIO", "Path", "PurePath", "PosixPath", "PurePosixPath", "WindowsPath",
    "PureWindowsPath", "read_text", "read_bytes", "open_text", "open_binary", "read_binary",
})
# Openers whose names are common words: counted only when taken from a file-handling module.
MODULE_OPENERS = frozenset({
    "loadtxt", "genfromtxt", "fromfile", "run_path", "readlink", "listdir", "scandir", "glob",
    "iglob", "copy", "copy2", "copyfile", "move", "stat", "lstat", "input",
})
FILE_MODULES = frozenset({"os", "posix", "shutil", "glob", "runpy", "numpy", "pathlib", "io",
                          "codecs", "tokenize", "fileinput", "pkgutil", "importlib.resources"})
PATH_KEYWORDS = ("file", "path", "filename", "name", "fname", "src", "pathname")
SHELL = frozenset({"system", "popen", "Popen", "run", "call", "check_call", "check_output",
                   "getoutput", "getstatusoutput", "spawnl", "spawnlp", "spawnv", "spawnvp",
                   "execl", "execlp", "execv", "execvp", "execve", "execvpe", "posix_spawn",
                   "posix_spawnp", "startfile"})
SHELL_MODULES = frozenset({"os", "subprocess", "pty", "commands", "posix"})
IMPORTERS = frozenset({"__import__", "import_module", "find_spec", "find_loader"})


@dataclass(frozen=True)
class Finding:
    """A level file that reads its own source, and every route found."""

    path: str
    reasons: tuple[str, ...]


def _names_own(value: str, own: str) -> bool:
    return value.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].strip() == own


def _mentions(value: str, own: str) -> bool:
    """Whether a command line names the file (`cat h2.py`, `cat ./h2.py`), not `xh2.py`."""
    return re.search(rf"(?<![\w.-]){re.escape(own)}(?![\w.-])", value) is not None


class _Finder:
    """Collects the self-read routes of one module (all versions' statements together)."""

    def __init__(self, tree: ast.Module, own: str) -> None:
        self.own = own
        self.module = own.removesuffix(".py")
        self.parents: dict[int, ast.AST] = {}
        self.nodes: list[ast.AST] = [tree]          # one walk, reused by every pass
        i = 0
        while i < len(self.nodes):
            node = self.nodes[i]
            i += 1
            for child in ast.iter_child_nodes(node):
                self.parents[id(child)] = node
                self.nodes.append(child)
        self.folder = Folder(tree, self.nodes)
        self.reasons: set[str] = set()
        self.aliases: dict[str, str] = {}           # local name -> module it stands for
        self.from_names: dict[str, tuple[str, str]] = {}   # local name -> (module, name)

    def run(self) -> set[str]:
        assigns = []
        for node in self.nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.aliases[alias.asname or alias.name.split(".")[0]] = alias.name
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    self.from_names[alias.asname or alias.name] = (node.module or "", alias.name)
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Name):
                assigns.append(node)
        for node in assigns:        # `x = sys`: a plain alias of a module name
            if isinstance(node.value, ast.Name) and node.value.id in self.aliases:
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        self.aliases.setdefault(t.id, self.aliases[node.value.id])
        for node in self.nodes:
            self._visit(node)
        return self.reasons

    # -- helpers ----------------------------------------------------------------------------
    def _module_of(self, node: ast.expr) -> str | None:
        """The module a receiver expression names (`os`, an alias, `os.path`), if any."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self._module_of(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (
                node.func.id == "__import__") and node.args:
            names = self.folder.fold(node.args[0]).strings()
            return names[0] if len(names) == 1 else None
        return None

    def _callee(self, func: ast.expr, hops: int = 0) -> tuple[str | None, str | None]:
        """(function name, module it comes from) of a call target, folding `getattr` and
        following plain aliases (`o = open`)."""
        if isinstance(func, ast.Name):
            if func.id in self.from_names:
                module, name = self.from_names[func.id]
                return name, module
            if hops < 8:
                for value in self.folder.bindings.get(func.id, []):
                    if isinstance(value, ast.Name | ast.Attribute):
                        return self._callee(value, hops + 1)
            return func.id, None
        if isinstance(func, ast.Attribute):
            return func.attr, self._module_of(func.value)
        if (isinstance(func, ast.Call) and isinstance(func.func, ast.Name)
                and func.func.id == "getattr" and len(func.args) >= 2):
            names = self.folder.fold(func.args[1]).strings()
            if len(names) == 1:
                return names[0], self._module_of(func.args[0])
        if isinstance(func, ast.Subscript):         # vars(builtins)['open']
            names = self.folder.fold(func.slice).strings()
            if len(names) == 1:
                return names[0], None
        return None, None

    def _path_arg(self, node: ast.Call) -> ast.expr | None:
        if node.args and not isinstance(node.args[0], ast.Starred):
            return node.args[0]
        for k in node.keywords:
            if k.arg in PATH_KEYWORDS:
                return k.value
        return None

    def _own_path(self, folded: Folded) -> str | None:
        """Why a folded path names the file itself (None: it does not)."""
        for s in folded.strings():
            if _names_own(s, self.own):
                return f"opens its own file by name ({s!r})"
            if "/proc/self" in s:
                return f"opens {s!r}"
        if not folded.complete:
            literal = [p for p in folded.parts if p]
            if any("/proc/" in p for p in literal):
                return "opens a computed /proc path"
            if all(p in self.own for p in literal):
                shown = " + ".join(repr(p) for p in literal) or "nothing literal"
                return f"opens a computed path whose literal parts ({shown}) fit its own name"
        return None

    # -- rules ------------------------------------------------------------------------------
    def _visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.Name):
            if node.id in FORBIDDEN:
                self.reasons.add(f"uses {node.id}")
            origin = self.from_names.get(node.id)
            if origin is not None:
                self._from_import_use(node, origin)
        elif isinstance(node, ast.Attribute):
            if node.attr in FORBIDDEN:
                self.reasons.add(f"uses .{node.attr}")
            module = self._module_of(node.value)
            if module in MODULE_FUNCS and node.attr in MODULE_FUNCS[module]:
                self.reasons.add(f"uses {module}.{node.attr}")
            if node.attr == "argv":
                self._argv_use(node)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            self._import(node)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
            self._string(Folded((node.value,), True, ()))
        elif isinstance(node, ast.BinOp | ast.JoinedStr | ast.Call | ast.Subscript):
            folded = self.folder.fold(node)
            if folded.values:
                self._string(folded)
            if isinstance(node, ast.Call):
                self._call(node)

    def _string(self, folded: Folded) -> None:
        for s in folded.strings():
            if "/proc/self" in s:
                self.reasons.add("mentions /proc/self")
            if s in FORBIDDEN:
                self.reasons.add(f"names {s!r}")
            if len(s) > 4096:    # a long text: only its lines that could be such a command
                s = "\n".join(line for line in s.split("\n")
                              if self.own in line or GLOB.search(line))[:65536]
            if shell_reads(s, self.own):
                self.reasons.add(f"holds a shell command reading {self.own}")

    def _from_import_use(self, node: ast.Name, origin: tuple[str, str]) -> None:
        module, name = origin
        if module == "sys" and name == "argv":
            self._argv_use(node)

    def _import(self, node: ast.Import | ast.ImportFrom) -> None:
        modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                   else [node.module or ""])
        for module in modules:
            top = module.split(".")[0]
            if top == "linecache":
                self.reasons.add("imports linecache")
            if top in (self.module, "__main__"):
                self.reasons.add(f"imports itself ({module})")
        if isinstance(node, ast.ImportFrom):
            funcs = MODULE_FUNCS.get(node.module or "", frozenset())
            for alias in node.names:
                if alias.name in FORBIDDEN or alias.name in funcs:
                    self.reasons.add(f"imports {alias.name} from {node.module}")

    def _argv_use(self, node: ast.expr) -> None:
        """`sys.argv` may be read past index 0 (`argv[1]`, `argv[1:]`) or measured."""
        parent = self.parents.get(id(node))
        if isinstance(parent, ast.Subscript) and parent.value is node:
            sl = parent.slice
            lower = sl.lower if isinstance(sl, ast.Slice) else sl
            step = sl.step if isinstance(sl, ast.Slice) else None
            if lower is not None:
                got = self.folder.fold(lower)
                step_ok = step is None or all(
                    isinstance(v, int) and v > 0 for v in self.folder.fold(step).values) and (
                    self.folder.fold(step).complete)
                if got.complete and got.values and step_ok and all(
                        isinstance(v, int) and not isinstance(v, bool) and v >= 1
                        for v in got.values):
                    return
        if (isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name)
                and parent.func.id == "len" and parent.args == [node]):
            return
        self.reasons.add("reads sys.argv (its own path is argv[0])")

    def _call(self, node: ast.Call) -> None:
        name, module = self._callee(node.func)
        if name is None:
            return
        if name in FORBIDDEN:
            self.reasons.add(f"calls {name}")
        if module in MODULE_FUNCS and name in MODULE_FUNCS[module]:
            self.reasons.add(f"calls {module}.{name}")
        if name in ("getattr", "__getattribute__", "hasattr") and len(node.args) >= 2:
            attr = self.folder.fold(node.args[1])
            if "argv" in attr.strings():
                self._argv_use(node)
            literal = [p for p in attr.parts if p]
            if not attr.complete and literal and any(
                    all(p in f for p in literal) for f in FORBIDDEN):
                self.reasons.add("looks up a computed attribute that fits a forbidden name")
        if name in IMPORTERS and node.args:
            for s in self.folder.fold(node.args[0]).strings():
                if s.split(".")[0] in (self.module, "__main__"):
                    self.reasons.add(f"imports itself ({s})")
                if s.split(".")[0] == "linecache":
                    self.reasons.add("imports linecache")
        if name in OPENERS or (name in MODULE_OPENERS and module is not None and (
                module in FILE_MODULES or module.split(".")[0] in FILE_MODULES)):
            self._opener(node, name, module)
        if name in SHELL and (module in SHELL_MODULES or name in ("system", "popen")):
            self._command(node, f"runs a command naming {self.own}")
        if "send" in name.lower():
            self._command(node, f"sends keys naming {self.own}")

    def _opener(self, node: ast.Call, name: str, module: str | None) -> None:
        func = node.func
        path = self._path_arg(node)
        receiver = func.value if isinstance(func, ast.Attribute) else None
        if receiver is not None and module is None and name in (
                "open", "read_text", "read_bytes", "stat", "lstat", "glob", "iglob"):
            # A method: `Path(p).read_text()`, `p.open()`; the path is the receiver, and an
            # unrelated object's `.open(session)` counts only when its argument names us.
            folded_receiver = self.folder.fold(receiver)
            if not folded_receiver.values and not self._is_path_object(receiver):
                if path is not None:
                    reason = self._own_path(self.folder.fold(path))
                    if reason is not None and self.folder.fold(path).values:
                        self.reasons.add(reason)
                return
            path = receiver if name != "glob" or path is None else path
        if path is None:
            return
        reason = self._own_path(self.folder.fold(path))
        if reason is not None:
            self.reasons.add(reason)

    def _is_path_object(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Call):
            name, _ = self._callee(node.func)
            return name in ("Path", "PurePath", "PosixPath", "PurePosixPath")
        if isinstance(node, ast.Name):
            return any(v is not None and self._is_path_object(v)
                       for v in self.folder.bindings.get(node.id, []))
        return False

    def _command(self, node: ast.Call, reason: str) -> None:
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            folded = self.folder.fold(arg)
            texts = folded.strings() + list(folded.parts)
            for v in folded.values:
                if isinstance(v, tuple):
                    texts += [x for x in v if isinstance(x, str)]
            if any(_mentions(t, self.own) for t in texts):
                self.reasons.add(reason)


_TEXT_PATTERNS = [
    (rf"\b(?:{'|'.join(sorted(FORBIDDEN))})\b", "uses {0}"),
    (r"/proc/self", "mentions /proc/self"),
    (r"\bargv\s*\[\s*0\s*\]", "reads argv[0]"),
    (rf"\b(?:inspect|traceback)\.(?:{'|'.join(sorted(set().union(*MODULE_FUNCS.values())))})\b",
     "uses {0}"),
]


def _text_reasons(source: str, own: str) -> set[str]:
    """The same routes as plain text, for a version that does not parse."""
    found = set()
    for pattern, reason in _TEXT_PATTERNS:
        m = re.search(pattern, source)
        if m:
            found.add(reason.format(m.group(0)))
    opener = (rf"\b(?:{'|'.join(sorted(OPENERS))})\s*\([^\n]*"
              rf"['\"](?:[^'\"\n]*/)?{re.escape(own)}['\"]")
    if re.search(opener, source):
        found.add(f"opens its own file by name ({own!r})")
    return found


def _parse(source: str | bytes) -> ast.Module | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def analyse(statements: Iterable[ast.stmt], own: str) -> set[str]:
    """Self-read routes in these statements (one module, or several versions' together)."""
    tree = ast.Module(body=list(statements), type_ignores=[])
    try:
        return _Finder(tree, own).run()
    except RecursionError:
        return {"too deeply nested to analyse"}


def reasons(source: str | bytes, own: str) -> set[str]:
    """Every self-read route in one source (bytes as stored, or text) of the file `own`."""
    tree = _parse(source)
    if tree is None:
        return _text_reasons(source if isinstance(source, str) else decode(source), own)
    return analyse(tree.body, own)


def reads_own_source(source: str | bytes, own: str) -> bool:
    """Whether the Python `source` of the file `own` reads itself."""
    return bool(reasons(source, own))


def _versions(traj: Trajectory) -> dict[str, list[str]]:
    """Each top-level `h{n}.py` path -> the distinct regular-file blobs it ever held."""
    out: dict[str, list[str]] = {}
    for commit in traj.commits:
        for change in commit.changes:
            if change.new is not None and level_of(change.path) is not None:
                blobs = out.setdefault(change.path, [])
                if change.new not in blobs:
                    blobs.append(change.new)
    return out


def _covered_dropped(pieces: Iterable[bytes]) -> list[bytes]:
    """The pieces less those another piece contains line for line.

    A piece P is dropped when another piece Q starts with P and P ends a line there (P ends
    with a newline, or Q continues with one): the file was typed on, so Q holds every logical
    line of P unchanged and the analysis of Q sees every construct of P. Typing a function
    line by line leaves one parseable version per line; without this the analysis would grow
    with the square of its length.

    >>> _covered_dropped([b"def f():\\n", b"def f():\\n    x = 1\\n", b"x = a", b"x = ab"])
    [b'def f():\\n    x = 1\\n', b'x = a', b'x = ab']
    >>> _covered_dropped([b"y = 1", b"y = 1\\nz = 2\\n"])
    [b'y = 1\\nz = 2\\n']
    """
    ordered = sorted(set(pieces))
    kept = []
    for i, piece in enumerate(ordered):
        line_done = piece.endswith(b"\n")
        covered = False
        for j in range(i + 1, len(ordered)):
            other = ordered[j]
            if not other.startswith(piece):
                break
            if line_done or other[len(piece):len(piece) + 1] == b"\n":
                covered = True
                break
        if not covered:
            kept.append(piece)
    return kept


def findings(traj: Trajectory) -> list[Finding]:
    """The level files that read their own source, with every route found."""
    traj.prefetch_code()
    verdicts = judge(traj)
    pieces: dict[bytes, list[ast.stmt]] = traj.memo("self_read.pieces", dict)
    out = []
    for path, blobs in sorted(_versions(traj).items(), key=lambda kv: level_of(kv[0]) or 0):
        seen: dict[bytes, None] = {}
        for sha in blobs:
            if verdicts.valid(path, sha):
                for piece in verdicts.cache.pieces(traj.blob(sha)):
                    seen.setdefault(piece)
        statements: list[ast.stmt] = []
        for piece in _covered_dropped(seen):
            if piece not in pieces:
                tree = _parse(piece)
                pieces[piece] = tree.body if tree is not None else []
            statements.extend(pieces[piece])
        found = analyse(statements, path) if statements else set()
        final = traj.final_tree.get(path)
        if final is not None and not verdicts.valid(path, final):
            found |= _text_reasons(traj.text(final), path)
        if found:
            out.append(Finding(path, tuple(sorted(found))))
    return out


def offenders(traj: Trajectory) -> list[str]:
    """Names of the top-level `h{n}.py` files that read their own source."""
    return [f.path for f in findings(traj)]


def compute(traj: Trajectory) -> int:
    """Number of level files that read their own source (any version that could have run)."""
    return len(findings(traj))


if __name__ == "__main__":
    sys.exit(metric_main("self_read", compute, per_session=False))
