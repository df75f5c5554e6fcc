"""self_read: level files that read their own source, one test per pattern."""
from __future__ import annotations

import pytest

from validators import Trajectory, self_read

READS = {
    "dunder file": "src = open(__file__).read()\n",
    "dunder file attribute": "import sys\nm = sys.modules['__main__']\nprint(m.__file__)\n",
    "dunder file string": "p = globals()['__file__']\n",
    "inspect.getsource": "import inspect, sys\nprint(inspect.getsource(sys.modules[__name__]))\n",
    "inspect alias getfile": "import inspect as ins\nprint(ins.getfile(print))\n",
    "from inspect import": "from inspect import getsourcelines\n",
    "sys.argv[0]": "import sys\nprint(open(sys.argv[0]).read())\n",
    "argv imported": "from sys import argv as av\nname = av[0]\n",
    "open own name": "with open('h2.py') as f:\n    f.read()\n",
    "dot slash": "data = open('./h2.py', 'rb').read()\n",
    "pathlib": "from pathlib import Path\nprint(Path('h2.py').read_text())\n",
    "through a variable": "me = 'h2.py'\ntext = open(me).read()\n",
    "nested argument": "import os\nopen(os.path.join('.', 'h2.py'))\n",
    "broken file, text search": "x = open('h2.py').read(\nif:\n",
    "broken file, dunder": "def f(:\n    __file__\n",
}

CLEAN = {
    "writes its child": "send('cat > h1.py')\nwith open('h1.py') as f:\n    pass\n",
    "argv beyond 0": "import sys\nargs = sys.argv[1:]\n",
    "own name as plain data": "NAME = 'h2.py'\nprint(NAME)\n",
    "inspect other": "import inspect\ninspect.signature(print)\n",
    "other module's getsource": "import mylib\nmylib.getsource_of_child()\n",
}


def count(make_traj, h2: str, h1: str = "print('hello world')\n") -> int:
    b = make_traj()
    b.init(depth=2, files={"h2.py": h2})
    b.key("h2_writer", "x", files={"h1.py": h1})
    with Trajectory.open(b.build()) as traj:
        return self_read.compute(traj)


@pytest.mark.parametrize("name", sorted(READS))
def test_each_self_read_pattern_is_found(make_traj, name: str) -> None:
    assert count(make_traj, READS[name]) == 1


@pytest.mark.parametrize("name", sorted(CLEAN))
def test_clean_files_are_not_flagged(make_traj, name: str) -> None:
    assert count(make_traj, CLEAN[name]) == 0


def test_counts_files_not_occurrences(make_traj) -> None:
    both = "print(__file__)\nimport sys\nprint(sys.argv[0])\n"
    assert count(make_traj, both, h1="print(open('h1.py').read())\n") == 2
    # h2 opening h1.py is not a self-read; h1 opening h1.py is.
    assert count(make_traj, "open('h1.py')\n", h1="open('h2.py')\n") == 0
