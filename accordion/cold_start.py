"""The built-in cold-start corpus: what a fresh MicroAccordion reads before any tower has run.

It imitates what the towers type — small Python harness programs, shell lines, the captures
a terminal answers with — plus a few plain sentences about the platform itself.
"""
from __future__ import annotations

COLD_START = r'''# h1.py - the bottom of a harness tower: type the task into its own session
import time
from harness_tower import ft

session = ft.session("h1_writer")
session.send_text("echo hello world")
session.send_enter()
out = session.wait_for("hello world", timeout=10.0)
print(out)

$ echo hello world
hello world
$ python3 h1.py
hello world

# h2.py - writes h1.py by typing it, then runs it
from harness_tower import ft

SOURCE = """import time
from harness_tower import ft

session = ft.session("h1_writer")
session.send_text("echo hello world")
session.send_enter()
print(session.wait_for("hello world", timeout=10.0))
"""

session = ft.session("h2_writer")
session.send_text("cat > h1.py <<'EOF'")
session.send_enter()
for line in SOURCE.splitlines():
    session.send_text(line)
    session.send_enter()
session.send_text("EOF")
session.send_enter()
session.send_text("python3 h1.py")
session.send_enter()
session.wait_for("hello world", timeout=30.0)

$ cat > h1.py <<'EOF'
> import time
> from harness_tower import ft
> EOF
$ python3 h1.py
hello world

A harness tower is a stack of programs. The first one drives a terminal to do a task.
The second one writes the first by typing it, keystroke by keystroke, and then runs it.
Every keystroke is a git commit, so the history of the repository is the trajectory.
Validators read the trajectory and score how well each level typed its program.
Selection keeps the genomes on the Pareto front: fast, correct, short, and stable.

def wait_for(pane, needle, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = pane.capture()
        if needle in text:
            return text
        time.sleep(0.05)
    raise TimeoutError(f"{needle!r} did not appear within {timeout}s")

def type_file(session, path, source):
    session.send_text(f"cat > {path} <<'EOF'")
    session.send_enter()
    for line in source.splitlines():
        session.send_text(line)
        session.send_enter()
    session.send_text("EOF")
    session.send_enter()

$ ls
h1.py  h2.py  h3.py
$ git log --oneline | head -3
4f2c1d0 h2_writer: type 'EOF'
91ab77e h2_writer: type 'print(out)'
0c3d2e1 init
$ python3 h2.py
hello world

The accordion is a small byte model that grows when it stops learning.
It widens its residual stream, adds heads, and adds blocks, and each growth keeps
what it already knew: the new parts start silent and learn to speak.
Its kernel memory remembers block outputs it has checked, and trusts them only
as far as the checks agree.

for level in range(depth, 0, -1):
    path = f"h{level}.py"
    source = render(genome, level)
    type_file(session, path, source)
    session.send_text(f"python3 {path}")
    session.send_enter()
    if not wait_for(session.pane, "hello world", timeout=60.0):
        break

$ echo hello world
hello world
$ echo done
done
'''
