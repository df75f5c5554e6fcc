"""self_read: level files that read their own source, one test per route; legitimate
harnesses (every seed rendered at depths 1-4, every content source) score 0."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from validators import Trajectory, self_read

READS = {
    # names that lead to the file or its code
    "dunder file": "src = open(__file__).read()\n",
    "dunder file attribute": "import sys\nm = sys.modules['__main__']\nprint(m.__file__)\n",
    "dunder file string": "p = globals()['__file__']\n",
    "dunder file computed string": "p = globals()['__fi' + 'le__']\n",
    "getattr computed": "import sys\nm = sys.modules['__main__']\n"
                        "x = getattr(m, '__f' + 'ile__')\n",
    "spec origin": "print(open(__spec__.origin).read())\n",
    "loader get_source": "print(__loader__.get_source(__name__))\n",
    "get_code": "import importlib.util as u\nc = u.find_spec('x').loader.get_code('x')\n",
    "get_data": "import pkgutil\nd = pkgutil.get_data('x', 'y')\n",
    "cached": "print(__cached__)\n",
    "co_filename": "def f():\n    pass\nprint(f.__code__.co_filename)\n",
    "inspect.getsource": "import inspect, sys\nprint(inspect.getsource(sys.modules[__name__]))\n",
    "inspect alias getfile": "import inspect as ins\nprint(ins.getfile(print))\n",
    "from inspect import": "from inspect import getsourcelines\n",
    "inspect.stack": "import inspect\nprint(inspect.stack()[0].filename)\n",
    "inspect through an alias": "import inspect\nI = inspect\nI.currentframe()\n",
    "traceback source lines": "import traceback\nlines = traceback.extract_stack()\n",
    "linecache import": "import linecache\nlinecache.getlines('x')\n",
    "linecache dynamic": "m = __import__('line' + 'cache')\n",
    # argv
    "sys.argv[0]": "import sys\nprint(open(sys.argv[0]).read())\n",
    "argv imported": "from sys import argv as av\nname = av[0]\n",
    "argv computed index": "import sys\nname = sys.argv[1 - 1]\n",
    "argv negative": "import sys\nname = sys.argv[-len(sys.argv)]\n",
    "argv iterated": "import sys\nfor a in sys.argv:\n    print(a)\n",
    "argv by getattr": "import sys\nname = getattr(sys, 'ar' + 'gv')[0]\n",
    "orig_argv": "import sys\nprint(sys.orig_argv)\n",
    # /proc
    "proc self": "print(open('/proc/self/cmdline').read())\n",
    "proc self in a path join": "import os\nos.path.join('/proc', 'self', 'fd')\n",
    "proc self concatenated": "x = '/pr' + 'oc/self'\n",
    "proc pid": "import os\nopen('/proc/' + str(os.getpid()) + '/cmdline')\n",
    # opening its own file by name
    "open own name": "with open('h2.py') as f:\n    f.read()\n",
    "dot slash": "data = open('./h2.py', 'rb').read()\n",
    "pathlib": "from pathlib import Path\nprint(Path('h2.py').read_text())\n",
    "pathlib join": "from pathlib import Path\nprint((Path('.') / 'h2.py').read_text())\n",
    "through a variable": "me = 'h2.py'\ntext = open(me).read()\n",
    "through a tuple": "a, me = 'x', 'h2.py'\ntext = open(me).read()\n",
    "nested argument": "import os\nopen(os.path.join('.', 'h2.py'))\n",
    "concatenation": "print(open('h2.p' + 'y').read())\n",
    "join": "print(open(''.join(['h', '2', '.py'])).read())\n",
    "f-string": "n = 2\nprint(open(f'h{n}.py').read())\n",
    "percent": "print(open('h%d.py' % 2).read())\n",
    "format": "print(open('h{}.{}'.format(2, 'py')).read())\n",
    "chr sequence": "name = ''.join(chr(c) for c in [104, 50, 46, 112, 121])\nopen(name)\n",
    "chr map": "name = ''.join(map(chr, [104, 50, 46, 112, 121]))\nopen(name)\n",
    "reversed": "open('yp.2h'[::-1])\n",
    "io.open": "import io\nio.open('h2.py')\n",
    "os.open": "import os\nos.read(os.open('h2.py', os.O_RDONLY), 100)\n",
    "open aliased": "o = open\no('h2.py')\n",
    "open via builtins": "import builtins\ngetattr(builtins, 'op' + 'en')('h2.py')\n",
    "unfoldable name of own parts": "import sys\nn = len(sys.path)\nopen('h' + str(n) + '.py')\n",
    "unfoldable name": "import os\nfor name in os.listdir('.'):\n    open(name)\n",
    "shutil copy": "import shutil\nshutil.copy('h2.py', '/tmp/x')\n",
    "runpy": "import runpy\nrunpy.run_path('./h2.py')\n",
    "bytes name": "open(bytes([104, 50, 46, 112, 121]))\n",
    "hex name": "open(bytes.fromhex('68322e7079').decode())\n",
    # through a shell or the terminal
    "os.system": "import os\nos.system('cat h2.py')\n",
    "subprocess": "import subprocess\nsubprocess.run(['cat', 'h' + '2.py'])\n",
    "shell glob": "def line(s):\n    pass\nline(\"awk '/^#B/{f=1}f' h[2].py > h1.py\")\n",
    "shell glob in pieces": "cmd = 'tail -n 5 ' + 'h?.py'\n",
    "shell input redirection": "keys = 'python3 - < ./h2.py'\n",
    "shell in a long text": "DOC = '''\n" + "x\n" * 3000 + "cat h*.py\n'''\n",
    "typed into its pane": "from harness_tower import ft\n"
                           "ft.ft_tmux_send_text('h2_writer', 'cat h2.py', 16, 5)\n",
    # importing itself
    "import itself": "import h2\n",
    "import_module itself": "import importlib\nimportlib.import_module('h' + '2')\n",
    "import main": "import __main__\nprint(vars(__main__))\n",
    # read, then rewrite its own file
    "read then rewrite": "src = open(__file__).read()\n"
                         "open(__file__, 'w').write(src.replace('x', 'y'))\n",
    # files that do not parse: text search
    "broken file, text search": "x = open('h2.py').read(\nif:\n",
    "broken file, dunder": "def f(:\n    __file__\n",
    "broken file, spec": "def f(:\n    __spec__.origin\n",
}

CLEAN = {
    "writes its child": "send('cat > h1.py')\nwith open('h1.py') as f:\n    pass\n",
    "argv beyond 0": "import sys\nargs = sys.argv[1:]\nfirst = sys.argv[1]\nn = len(sys.argv)\n",
    "own name as plain data": "NAME = 'h2.py'\nprint(NAME)\n",
    "inspect other": "import inspect\ninspect.signature(print)\n",
    "other module's getsource": "import mylib\nmylib.getsource_of_child()\n",
    "terminal open": "from harness_tower import ft\nterm = ft.Terminal()\nterm.open(session)\n",
    "copy module": "import copy\nstate = copy.copy(x)\nd = {}.copy()\n",
    "path of the child": "from pathlib import Path\nLEVEL = 2\nPath(f'h{LEVEL - 1}.py').exists()\n",
    "types its child's run": "import subprocess\nsend('python3 h1.py')\nsubprocess.run(['ls'])\n",
    "writes its child by shell": "line('cat > h1.py')\nline(\"cat > h2.py.bak <<'EOF'\")\n",
    "globs that miss it": "line('cat h1*.py')\nline('ls h?.txt')\nx = 'a[0] * b? c'\n",
    "a huge constant": "x = 'a' * 10 ** 9\ny = '{:>99999999}'.format(1)\nz = bytes(10 ** 9)\n",
}


def count(make_traj, h2: str, h1: str = "print('hello world')\n") -> int:
    b = make_traj()
    b.init(depth=2, files={"h2.py": h2})
    b.key("h2_writer", "x", files={"h1.py": h1})
    with Trajectory.open(b.build()) as traj:
        return self_read.compute(traj)


@pytest.mark.parametrize("name", sorted(READS))
def test_each_self_read_route_is_found(make_traj, name: str) -> None:
    assert count(make_traj, READS[name]) == 1


@pytest.mark.parametrize("name", sorted(CLEAN))
def test_clean_files_are_not_flagged(make_traj, name: str) -> None:
    assert count(make_traj, CLEAN[name]) == 0


def test_counts_files_not_occurrences(make_traj) -> None:
    both = "print(__file__)\nimport sys\nprint(sys.argv[0])\n"
    assert count(make_traj, both, h1="print(open('h1.py').read())\n") == 2
    # h2 opening h1.py is not a self-read; h1 opening h1.py is.
    assert count(make_traj, "open('h1.py')\n", h1="open('h2.py')\n") == 0
    assert count(make_traj, "x = 1\n", h1="open('h1.p' + 'y')\n") == 1


def test_a_version_rewritten_clean_still_counts(make_traj) -> None:
    # h1.py reads itself when it runs, then cuts those lines from its file: the version that
    # ran is in the history even though the final tree is clean.
    b = make_traj()
    b.init(depth=2, files={"h2.py": "x = 1\n"})
    b.key("h2_writer", "a", files={"h1.py": "s = open(__file__).read()\nprint(1)\n"})
    b.key("h2_writer", "b", files={"h1.py": "print(1)\n"})
    with Trajectory.open(b.build()) as traj:
        found = self_read.findings(traj)
    assert [f.path for f in found] == ["h1.py"] and "uses __file__" in found[0].reasons


def test_versions_that_never_parsed_are_not_searched(make_traj) -> None:
    b = make_traj()
    b.init(depth=2, files={"h2.py": "x = 1\n"})
    b.key("h2_writer", "a", files={"h1.py": "x = (\n__file__"})     # could never have run
    b.key("h2_writer", "b", files={"h1.py": "print(1)\n"})
    with Trajectory.open(b.build()) as traj:
        assert self_read.compute(traj) == 0


def test_findings_name_the_route(make_traj) -> None:
    b = make_traj()
    b.init(depth=2, files={"h2.py": "import sys\nopen(sys.argv[0])\n"})
    with Trajectory.open(b.build()) as traj:
        found = self_read.findings(traj)
    assert [f.path for f in found] == ["h2.py"]
    assert "reads sys.argv (its own path is argv[0])" in found[0].reasons


# -- the shipped harnesses are legitimate -------------------------------------------------------

SEEDS = sorted((Path(__file__).resolve().parents[2] / "populations" / "seeds").glob("*.json"))


def _genomes():
    from harness_tower.genome import TowerGenome
    out = {p.stem: TowerGenome.from_dict(json.loads(p.read_text())) for p in SEEDS}
    out["expert_line"] = TowerGenome(content_source="expert", typing_mode="line")
    out["expert_statement"] = TowerGenome(content_source="expert", typing_mode="statement")
    return out


def test_there_are_seeds() -> None:
    assert len(SEEDS) >= 4


# Seeds at depths 1-4; the expert content source (no seed ships one) at 1-3, since
# rendering its depth 4 alone takes seconds.
CASES = [(p.stem, 4) for p in SEEDS] + [("expert_line", 3), ("expert_statement", 3)]


@pytest.mark.parametrize(("name", "top"), CASES)
def test_rendered_harnesses_score_zero_at_every_level(make_traj, name: str, top: int) -> None:
    from harness_tower.render import render
    genome = _genomes()[name]
    sources = {n: render(genome, n) for n in range(1, top + 1)}
    for n, source in sources.items():
        assert self_read.reasons(source, f"h{n}.py") == set(), (name, n)
    for depth in range(1, top + 1):
        b = make_traj()
        b.init(depth=depth, files={f"h{depth}.py": sources[depth]})
        for n in range(depth, 1, -1):
            b.key(f"h{n}_writer", "x", files={f"h{n - 1}.py": sources[n - 1]})
        with Trajectory.open(b.build()) as traj:
            assert self_read.compute(traj) == 0, (name, depth)
