"""Constant folding over a module's AST: which strings could an expression evaluate to?

`self_read` must see through computed names (`open('h1.p' + 'y')`, `''.join(...)`,
f-strings, `%`/`.format`, `chr` sequences, names bound to any of those). `Folder.fold(node)`
answers with a `Folded`: the values the expression may take (as far as they can be known),
whether that list is complete, and the literal string fragments it is built from - what is
left to judge when the value depends on something unknowable (`'h' + str(n) + '.py'`).

Bindings are collected over the whole module, ignoring scopes: a name bound in several
places may hold any of those values (a union, so nothing a harness can reach is missed).
Evaluation is bounded (values per expression, string length, recursion depth); past a
bound the answer is "incomplete", never wrong.

>>> import ast
>>> tree = ast.parse("a = 'h1.p'\\nb = a + 'y'\\nc = ''.join(chr(x) for x in [104, 50])\\n"
...                  "d = 'h%d.py' % n\\n")
>>> f = Folder(tree)
>>> [f.fold(node.value).values for node in tree.body[1:3]]
[('h1.py',), ('h2',)]
>>> d = f.fold(tree.body[3].value)
>>> d.complete, d.parts
(False, ('h%d.py',))
"""
from __future__ import annotations

import ast
import base64
import binascii
import codecs
import itertools
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

MAX_VALUES = 32
MAX_CHARS = 200_000
MAX_DEPTH = 40


@dataclass(frozen=True)
class Folded:
    """What an expression may evaluate to.

    `values`: possible values found (str, bytes, int, float, bool, None, tuple, `FDict`);
    `complete`: whether `values` lists every possibility; `parts`: the string fragments
    (literals and folded sub-expressions) the expression is built from.
    """

    values: tuple[Any, ...] = ()
    complete: bool = False
    parts: tuple[str, ...] = ()

    def strings(self) -> list[str]:
        """The possible values that are text (bytes decoded as Latin-1, losslessly)."""
        out = []
        for v in self.values:
            if isinstance(v, str):
                out.append(v)
            elif isinstance(v, bytes | bytearray):
                out.append(bytes(v).decode("latin-1"))
        return out


UNKNOWN = Folded()


@dataclass(frozen=True)
class FDict:
    """A folded dict literal (for `%` and `.format(**d)`)."""

    items: tuple[tuple[Any, Any], ...]

    def as_dict(self) -> dict[Any, Any]:
        return dict(self.items)


def _known(*values: Any) -> Folded:
    kept = tuple(v for v in values if _small(v))
    parts = tuple(_text(v) for v in kept if isinstance(v, str | bytes))
    return Folded(kept[:MAX_VALUES], len(kept) == len(values) and len(kept) <= MAX_VALUES,
                  tuple(dict.fromkeys(parts)))


def _text(v: str | bytes) -> str:
    return v if isinstance(v, str) else v.decode("latin-1")


def _small(v: Any) -> bool:
    if isinstance(v, str | bytes | bytearray):
        return len(v) <= MAX_CHARS
    if isinstance(v, tuple):
        return len(v) <= 4096 and all(_small(x) for x in v)
    if isinstance(v, int) and not isinstance(v, bool):
        return abs(v) < 1 << 64
    return isinstance(v, float | bool | FDict) or v is None


def _merge(parts: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(itertools.chain.from_iterable(parts)))


def _combine(args: list[Folded], fn: Callable[..., Any]) -> Folded:
    """Apply `fn` to every combination of the arguments' possible values."""
    parts = _merge(a.parts for a in args)
    complete = all(a.complete for a in args)
    values: list[Any] = []
    combos = 1
    for a in args:
        combos *= max(len(a.values), 1)
    if combos > MAX_VALUES * 4 or any(not a.values for a in args):
        return Folded((), False, parts)
    for combo in itertools.product(*(a.values for a in args)):
        try:
            v = fn(*combo)
        except Exception:  # noqa: BLE001 - whatever Python would raise there: not a value
            complete = False
            continue
        if isinstance(v, list):
            v = tuple(v)
        if _small(v) and v not in values:
            values.append(v)
        elif not _small(v):
            complete = False
    out = _known(*values)
    return Folded(out.values, complete and out.complete, _merge([out.parts, parts]) if not
                  (complete and out.complete) else out.parts)


def _mul(a: Any, b: Any) -> Any:
    for seq, n in ((a, b), (b, a)):
        if (isinstance(seq, str | bytes | tuple) and isinstance(n, int)
                and len(seq) * max(n, 0) > MAX_CHARS):
            raise OverflowError
    return a * b


def _pow(a: Any, b: Any) -> Any:
    if isinstance(b, int) and b > 64:
        raise OverflowError
    return a ** b


def _lshift(a: Any, b: Any) -> Any:
    if isinstance(b, int) and b > 64:
        raise OverflowError
    return a << b


_WIDE_PERCENT = re.compile(
    r"%[-+ #0]*(?:\(\w*\))?[-+ #0]*(?:\*|[0-9]{7,}|[0-9]*\.(?:\*|[0-9]{7,}))")
_WIDE_BRACE = re.compile(r"\{[^{}:!]*[.\[]|\{[^{}]*:[^{}]*(?:\{|[0-9]{7,})")
_WIDE_SPEC = re.compile(r"[0-9]{7,}")


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, str | bytes) and _WIDE_PERCENT.search(_text(a)):
        raise OverflowError        # a huge width, or one taken from the arguments
    if isinstance(b, FDict):
        b = b.as_dict()
    return a % b


def _format(value: Any, spec: Any = "") -> str:
    if not isinstance(spec, str) or _WIDE_SPEC.search(spec):
        raise OverflowError
    return format(value, spec)


def _sized(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` refusing integer arguments that would build a huge object (bytes(10**9))."""
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if any(isinstance(a, int) and a > MAX_CHARS for a in [*args, *kwargs.values()]):
            raise OverflowError
        return fn(*args, **kwargs)
    return guarded


def _div(a: Any, b: Any) -> Any:
    if isinstance(a, str) and isinstance(b, str):   # pathlib's `/`
        return a.rstrip("/") + "/" + b if a else b
    return a / b


_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: _mul, ast.Mod: _mod,
    ast.Div: _div, ast.FloorDiv: operator.floordiv, ast.Pow: _pow, ast.LShift: _lshift,
    ast.RShift: operator.rshift, ast.BitOr: operator.or_, ast.BitXor: operator.xor,
    ast.BitAnd: operator.and_,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert,
    ast.Not: operator.not_,
}

# Methods of a folded receiver that keep producing something foldable.
_METHODS = frozenset({
    "join", "format", "format_map", "replace", "lower", "upper", "strip", "lstrip", "rstrip",
    "removeprefix", "removesuffix", "decode", "encode", "title", "capitalize", "casefold",
    "swapcase", "zfill", "ljust", "rjust", "center", "split", "rsplit", "splitlines",
    "partition", "rpartition", "expandtabs", "translate", "maketrans", "fromhex", "hex",
})


def _path_join(*parts: Any) -> str:
    out = ""
    for p in parts:
        p = _text(p) if isinstance(p, bytes) else p
        if not isinstance(p, str):
            raise TypeError
        out = p if p.startswith("/") or not out else out.rstrip("/") + "/" + p
    return out


def _decode_codec(data: Any, name: Any = "utf-8") -> Any:
    if isinstance(data, str) and isinstance(name, str) and name.replace("_", "").lower() == "rot13":
        return codecs.decode(data, "rot13")
    if isinstance(data, bytes) and isinstance(name, str) and name.replace("-", "_").lower() in (
            "utf_8", "utf8", "ascii", "latin_1", "latin1", "hex", "hex_codec", "base64",
            "base64_codec"):
        return codecs.decode(data, name)
    raise TypeError       # no decompressing codecs: a small literal must stay small


def _fn_chr(i: Any) -> str:
    return chr(i)


def _fn_str(v: Any = "") -> str:
    if isinstance(v, FDict):
        raise TypeError
    return str(v)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "chr": _fn_chr, "str": _fn_str, "repr": repr, "ascii": ascii, "int": int, "ord": ord,
    "bytes": _sized(bytes), "bytearray": _sized(lambda *a: bytes(bytearray(*a))),
    "format": _format,
    "reversed": lambda s: tuple(reversed(s)), "list": tuple, "tuple": tuple, "len": len,
    "sorted": lambda s: tuple(sorted(s)), "hex": hex, "oct": oct, "bin": bin, "abs": abs,
    "Path": _path_join, "PurePath": _path_join, "PosixPath": _path_join,
    "PurePosixPath": _path_join, "fspath": lambda p: p, "abspath": lambda p: p,
    "realpath": lambda p: p, "normpath": lambda p: p, "basename": lambda p: p.rsplit("/", 1)[-1],
    "b64decode": base64.b64decode, "urlsafe_b64decode": base64.urlsafe_b64decode,
    "b32decode": base64.b32decode, "b16decode": base64.b16decode, "b85decode": base64.b85decode,
    "a85decode": base64.a85decode, "unhexlify": binascii.unhexlify, "a2b_hex": binascii.a2b_hex,
}


_CONVERSIONS: dict[int, Callable[[Any], str]] = {ord("r"): repr, ord("a"): ascii, ord("s"): str}


class Folder:
    """Folds expressions of one module (see the module docstring)."""

    def __init__(self, tree: ast.AST, nodes: Iterable[ast.AST] | None = None) -> None:
        """Collect the bindings of `tree` (`nodes`: its nodes, when the caller walked it)."""
        self.bindings: dict[str, list[ast.expr | None]] = {}   # None: bound to the unknown
        self._memo: dict[int, Folded] = {}
        self._names: dict[str, Folded] = {}
        self._active: set[str] = set()
        for node in (ast.walk(tree) if nodes is None else nodes):
            self._collect(node)

    # -- bindings -------------------------------------------------------------------------
    def _bind(self, target: ast.AST, value: ast.expr | None) -> None:
        if isinstance(target, ast.Name):
            self.bindings.setdefault(target.id, []).append(value)
        elif isinstance(target, ast.Tuple | ast.List):
            elts = value.elts if isinstance(value, ast.Tuple | ast.List) else None
            if elts is not None and len(elts) == len(target.elts) and not any(
                    isinstance(e, ast.Starred) for e in [*elts, *target.elts]):
                for t, v in zip(target.elts, elts, strict=True):
                    self._bind(t, v)
            else:
                for t in target.elts:
                    self._bind(t.value if isinstance(t, ast.Starred) else t, None)
        elif isinstance(target, ast.Starred):
            self._bind(target.value, None)

    def _collect(self, node: ast.AST) -> None:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                self._bind(target, node.value)
        elif isinstance(node, ast.AnnAssign | ast.NamedExpr) and node.value is not None:
            self._bind(node.target, node.value)
        elif isinstance(node, ast.AugAssign | ast.For | ast.AsyncFor | ast.comprehension):
            self._bind(node.target, None)
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            self._bind(node.optional_vars, None)
        elif isinstance(node, ast.arg):
            self.bindings.setdefault(node.arg, []).append(None)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                self.bindings.setdefault(name, []).append(None)
        elif (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
                         | ast.ExceptHandler) and node.name):
            self.bindings.setdefault(node.name, []).append(None)

    # -- folding --------------------------------------------------------------------------
    def fold(self, node: ast.AST | None, local: dict[str, Any] | None = None,
             depth: int = 0) -> Folded:
        """What `node` may evaluate to; `local` binds comprehension variables."""
        if node is None:
            return _known(None)
        if depth > MAX_DEPTH:
            return UNKNOWN
        if local is None:
            found = self._memo.get(id(node))
            if found is None:
                found = self._memo[id(node)] = self._fold(node, None, depth)
            return found
        return self._fold(node, local, depth)

    def _fold(self, node: ast.AST, local: dict[str, Any] | None, depth: int) -> Folded:
        d = depth + 1
        if isinstance(node, ast.Constant):
            return _known(node.value) if _small(node.value) else UNKNOWN
        if isinstance(node, ast.Name):
            return self._name(node.id, local, d)
        if isinstance(node, ast.JoinedStr):
            return self._fstring(node, local, d)
        if isinstance(node, ast.BinOp):
            fn = _BINOPS.get(type(node.op))
            args = [self.fold(node.left, local, d), self.fold(node.right, local, d)]
            return _combine(args, fn) if fn else Folded((), False, _merge(a.parts for a in args))
        if isinstance(node, ast.UnaryOp):
            return _combine([self.fold(node.operand, local, d)], _UNARY[type(node.op)])
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            if any(isinstance(e, ast.Starred) for e in node.elts):
                return self._parts_only(node.elts, local, d)
            return _combine([self.fold(e, local, d) for e in node.elts], lambda *xs: tuple(xs))
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                return self._parts_only(node.values, local, d)
            keys = [self.fold(k, local, d) for k in node.keys]
            values = [self.fold(v, local, d) for v in node.values]
            n = len(keys)
            return _combine([*keys, *values],
                            lambda *xs: FDict(tuple(zip(xs[:n], xs[n:], strict=True))))
        if isinstance(node, ast.Subscript):
            return self._subscript(node, local, d)
        if isinstance(node, ast.IfExp | ast.BoolOp):
            options = [node.body, node.orelse] if isinstance(node, ast.IfExp) else node.values
            return self._union([self.fold(o, local, d) for o in options])
        if isinstance(node, ast.NamedExpr):
            return self.fold(node.value, local, d)
        if isinstance(node, ast.Call):
            return self._call(node, local, d)
        if isinstance(node, ast.ListComp | ast.GeneratorExp | ast.SetComp):
            return self._comprehension(node, local, d)
        if isinstance(node, ast.expr):
            return self._parts_only(list(ast.iter_child_nodes(node)), local, d)
        return UNKNOWN

    def _parts_only(self, nodes: Iterable[ast.AST], local: dict[str, Any] | None,
                    depth: int) -> Folded:
        return Folded((), False, _merge(self.fold(n, local, depth).parts for n in nodes
                                        if isinstance(n, ast.expr)))

    @staticmethod
    def _union(options: list[Folded]) -> Folded:
        values: list[Any] = []
        for o in options:
            values.extend(v for v in o.values if v not in values)
        out = _known(*values)
        return Folded(out.values, all(o.complete for o in options) and out.complete,
                      _merge(o.parts for o in options))

    def _name(self, name: str, local: dict[str, Any] | None, depth: int) -> Folded:
        if local is not None and name in local:
            return _known(local[name])
        found = self._names.get(name)
        if found is not None:
            return found
        bound = self.bindings.get(name)
        if not bound or name in self._active:
            return UNKNOWN
        self._active.add(name)
        try:
            options = [self.fold(v, None, depth) if v is not None else UNKNOWN for v in bound]
        finally:
            self._active.discard(name)
        found = self._names[name] = self._union(options)
        return found

    def _fstring(self, node: ast.JoinedStr, local: dict[str, Any] | None, depth: int) -> Folded:
        pieces: list[Folded] = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                inner = self.fold(value.value, local, depth)
                spec = (self.fold(value.format_spec, local, depth) if value.format_spec
                        else _known(""))
                conv = _CONVERSIONS.get(value.conversion)

                def render(v: Any, s: Any, conv: Callable[[Any], str] | None = conv) -> str:
                    return _format(conv(v) if conv else v, s)
                pieces.append(_combine([inner, spec], render))
            else:
                pieces.append(self.fold(value, local, depth))
        return _combine(pieces, lambda *xs: "".join(xs)) if pieces else _known("")

    def _subscript(self, node: ast.Subscript, local: dict[str, Any] | None,
                   depth: int) -> Folded:
        base = self.fold(node.value, local, depth)
        sl = node.slice
        if isinstance(sl, ast.Slice):
            bounds = [self.fold(x, local, depth) for x in (sl.lower, sl.upper, sl.step)]
            return _combine([base, *bounds], lambda s, a, b, c: s[a:b:c])
        index = self.fold(sl, local, depth)

        def get(s: Any, i: Any) -> Any:
            return s.as_dict()[i] if isinstance(s, FDict) else s[i]
        return _combine([base, index], get)

    def _comprehension(self, node: ast.ListComp | ast.GeneratorExp | ast.SetComp,
                       local: dict[str, Any] | None, depth: int) -> Folded:
        gens = node.generators
        parts = self.fold(node.elt, local, depth).parts
        if len(gens) != 1 or gens[0].is_async:
            return Folded((), False, parts)
        gen = gens[0]
        source = self.fold(gen.iter, local, depth)
        if len(source.values) != 1 or not source.complete or not isinstance(
                source.values[0], str | bytes | tuple):
            return Folded((), False, _merge([parts, source.parts]))
        items: list[Any] = []
        for item in source.values[0]:
            scope = dict(local or {})
            if not _assign(gen.target, item, scope):
                return Folded((), False, parts)
            keep = [self.fold(cond, scope, depth) for cond in gen.ifs]
            if any(len(k.values) != 1 or not k.complete for k in keep):
                return Folded((), False, parts)
            if not all(k.values[0] for k in keep):
                continue
            elt = self.fold(node.elt, scope, depth)
            if len(elt.values) != 1 or not elt.complete:
                return Folded((), False, _merge([parts, elt.parts]))
            items.append(elt.values[0])
            if len(items) > 4096:
                return Folded((), False, parts)
        return _known(tuple(items))

    def _call(self, node: ast.Call, local: dict[str, Any] | None, depth: int) -> Folded:
        func = node.func
        if any(isinstance(a, ast.Starred) for a in node.args):
            return self._parts_only([*node.args, *(k.value for k in node.keywords)], local, depth)
        args = [self.fold(a, local, depth) for a in node.args]
        keywords = [(k.arg, self.fold(k.value, local, depth)) for k in node.keywords]
        everything = _merge([*(a.parts for a in args), *(k.parts for _, k in keywords)])
        if isinstance(func, ast.Attribute) and func.attr == "decode" and isinstance(
                func.value, ast.Name) and func.value.id == "codecs":
            return self._apply(_decode_codec, args, keywords, everything)
        if isinstance(func, ast.Attribute) and func.attr in _METHODS:
            receiver = self.fold(func.value, local, depth)
            if receiver.values and any(isinstance(v, str | bytes) for v in receiver.values):
                return self._method(func.attr, receiver, args, keywords)
            if func.attr == "join":  # os.path.join and friends
                return self._apply(_path_join, args, keywords, everything)
            if func.attr == "fromhex":
                return self._apply(bytes.fromhex, args, keywords, everything)
            return Folded((), False, _merge([receiver.parts, everything]))
        name = func.id if isinstance(func, ast.Name) else (
            func.attr if isinstance(func, ast.Attribute) else None)
        if name == "map" and len(node.args) == 2 and isinstance(node.args[0], ast.Name):
            each = _FUNCTIONS.get(node.args[0].id)
            if each is not None:
                return _combine([args[1]], lambda seq: tuple(each(x) for x in seq))
        fn = _FUNCTIONS.get(name) if name is not None else None
        if fn is None:
            return Folded((), False, everything)
        return self._apply(fn, args, keywords, everything)

    @staticmethod
    def _apply(fn: Callable[..., Any], args: list[Folded],
               keywords: list[tuple[str | None, Folded]], parts: tuple[str, ...]) -> Folded:
        if any(name is None for name, _ in keywords):
            return Folded((), False, parts)
        names = [name for name, _ in keywords if name is not None]
        n = len(args)

        def call(*xs: Any) -> Any:
            return fn(*xs[:n], **dict(zip(names, xs[n:], strict=True)))
        out = _combine([*args, *(k for _, k in keywords)], call)
        return out if out.values else Folded((), False, _merge([out.parts, parts]))

    @staticmethod
    def _method(attr: str, receiver: Folded, args: list[Folded],
                keywords: list[tuple[str | None, Folded]]) -> Folded:
        if any(name is None for name, _ in keywords):
            if attr == "format" and len(keywords) == 1 and not args:
                def spread(s: Any, d: Any) -> Any:
                    if _WIDE_BRACE.search(_text(s)) or not isinstance(d, FDict):
                        raise OverflowError
                    return s.format(**d.as_dict())
                return _combine([receiver, keywords[0][1]], spread)
            return Folded((), False, _merge([receiver.parts, *(a.parts for a in args)]))
        names = [name for name, _ in keywords if name is not None]
        n = len(args)

        def call(s: Any, *xs: Any) -> Any:
            if attr in ("format", "format_map") and _WIDE_BRACE.search(_text(s)):
                raise OverflowError   # attribute/index lookups or huge widths: not folded
            if any(isinstance(x, int) and x > MAX_CHARS for x in xs):
                raise OverflowError   # "x".center(10**9)
            if attr == "format_map" and xs and isinstance(xs[0], FDict):
                return s.format_map(xs[0].as_dict())
            return getattr(s, attr)(*xs[:n], **dict(zip(names, xs[n:], strict=True)))
        return _combine([receiver, *args, *(k for _, k in keywords)], call)


def _assign(target: ast.AST, value: Any, scope: dict[str, Any]) -> bool:
    """Bind a comprehension target to one item; False when the shapes do not match."""
    if isinstance(target, ast.Name):
        scope[target.id] = value
        return True
    if isinstance(target, ast.Tuple | ast.List) and isinstance(value, tuple | str | bytes):
        if len(target.elts) != len(value):
            return False
        return all(_assign(t, v, scope) for t, v in zip(target.elts, value, strict=True))
    return False
