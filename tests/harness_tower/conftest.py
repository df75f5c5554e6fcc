from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from harness_tower.genome import ExperienceEntry, TowerGenome, default_experience
from harness_tower.tasks import Task, parse_suite


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


def token_processes(token: str) -> list[int]:
    """PIDs of live processes carrying a sandbox token in their environment."""
    marker = f"TOWER_SANDBOX={token}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if marker not in fh.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat", "rb") as fh:
                if fh.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue
        except OSError:
            continue
        found.append(int(entry))
    return found


def user_processes(uid: int) -> list[int]:
    """PIDs of live processes running as `uid` (a sandbox's own user)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                fields = dict(line.split(":", 1) for line in fh if ":" in line)
        except OSError:
            continue
        if str(uid) in fields.get("Uid", "").split() and fields.get("State", "").split()[:1] not in (["Z"], ["X"]):
            found.append(int(entry))
    return found


def typing_genome(command: str, **fields: object) -> TowerGenome:
    """A genome whose task level answers every task by typing `command` (then Enter) once."""
    decision = default_experience()["decision"]
    rows = (ExperienceEntry("do the task", "whatever was asked", command),)
    return TowerGenome(experience={"decision": decision, "command": rows}, **fields)  # type: ignore[arg-type]


def one_task(expected: str = "hello world", instruction: str = "Print the words hello world.") -> list[Task]:
    """A sample of one task whose check is an expected output line (no set-up)."""
    suite = parse_suite(yaml.safe_dump({"name": "one", "version": 1, "tasks": [
        {"id": "one", "instruction": instruction, "split": "train", "tier": 1,
         "check": {"output": [expected]}, "solution": [f"echo {expected}"]}]}), "one.yaml")
    return list(suite.tasks)


@pytest.fixture
def out_dir(short_tmp: Path) -> Path:
    return short_tmp / "eval"
