"""Reading a trajectory's history: commits, sessions, trailers, changes, errors."""
from __future__ import annotations

import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from validators import RepositoryError, Trajectory, UnknownSessionError
from validators.trailers import label_of, parse_message


def test_history_is_read_oldest_first_with_bookends_excluded(make_traj) -> None:
    b = make_traj()
    b.init(depth=2, files={"h2.py": "print(1)\n"})
    b.key("h2_writer", "cat > h1.py", files={"h1.py": ""})
    b.key("h2_writer", "Enter", "ctrl")
    b.done()
    with Trajectory.open(b.build()) as traj:
        assert [c.subject for c in traj.commits] == [
            "init", "h2_writer: cat > h1.py", "h2_writer: Enter", "done"]
        assert [c.is_key for c in traj.commits] == [False, True, True, False]
        assert traj.sessions == ("h2_writer",)
        assert traj.depth == 2
        assert traj.manifest is not None and traj.manifest["task"]["expected"] == "hello world"
        first = traj.commits_of("h2_writer")[0]
        assert first.trailers.keys() == "cat > h1.py"
        assert first.trailers.time() == Decimal("1795309284.250000")
        assert {c.path for c in first.changes} == {"h1.py", ".captures/h2_writer/000001.txt"}
        assert sorted(traj.final_tree) == [".captures/h2_writer/000001.txt",
                                           ".captures/h2_writer/000002.txt",
                                           ".tower/manifest.json", ".tower/result.json",
                                           "h1.py", "h2.py"]


def test_renames_are_a_delete_and_an_add(make_traj) -> None:
    b = make_traj()
    b.init(files={"a.py": "x = 1\n"})
    b.commit("s: mv\n\nKeys: \"mv\"\nKind: text\nSeq: 1\nTime: 1.0", {"a.py": None, "b.py": "x = 1\n"})
    with Trajectory.open(b.build()) as traj:
        changes = {(c.path, c.old is None, c.new is None) for c in traj.commits[1].changes}
        assert changes == {("a.py", False, True), ("b.py", True, False)}


def test_sessions_resolve_by_name_or_rank_label(make_traj) -> None:
    b = make_traj()
    b.init()
    b.key("h3_writer", "a")
    b.key("h2_writer", "b")
    b.key("driver", "c")
    with Trajectory.open(b.build()) as traj:
        assert traj.sessions == ("h3_writer", "h2_writer", "driver")
        assert traj.resolve("h2") == "h2_writer"
        assert len(traj.commits_of("h3_writer")) == 1
        with pytest.raises(UnknownSessionError) as err:
            traj.commits_of("h1_writer")
        assert err.value.session == "h1_writer"
        assert "h3_writer" in str(err.value)


def test_depth_falls_back_to_the_highest_level_file(make_traj) -> None:
    b = make_traj()
    b.commit("init", {"h1.py": "", "h3.py": "", "h10x.py": ""})
    with Trajectory.open(b.build()) as traj:
        assert traj.manifest is None
        assert traj.depth == 3
        assert sorted(traj.level_files) == [1, 3]


def test_message_parsing() -> None:
    m = parse_message('h1_writer: \u00e9\n\nKeys: "\\u00e9\\u20ac"\nKind: text\nSeq: 7\nTime: 12.5\n')
    assert (m.session, m.trailers.keys(), m.trailers.seq()) == ("h1_writer", "\u00e9\u20ac", 7)
    assert parse_message("no prefix here").session is None
    assert parse_message("two words: x").session is None
    repeated = parse_message("s: x\n\nSeq: 1\nSeq: 2\n").trailers
    assert repeated.repeated == frozenset({"Seq"}) and repeated.seq() == 1
    assert label_of("h12_writer") == "h12" and label_of("h2_reader") == "h2_reader"


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="no such file"):
        Trajectory.open(tmp_path / "absent")


def test_plain_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="not a git repository"):
        Trajectory.open(tmp_path)


def test_repository_without_commits_is_an_error(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path / "empty")], check=True)
    with pytest.raises(RepositoryError, match="no commits"):
        Trajectory.open(tmp_path / "empty")


def test_bulk_prefetch_returns_the_exact_bytes_of_every_blob(make_traj) -> None:
    contents = [b"", b"\x00\xff\n" * 7, "caf\u00e9\n".encode(), b"x\n" * 5000, b"\n"]
    b = make_traj()
    b.init()
    for i in range(40):
        b.key("h2_writer", str(i), files={f"f{i % 3}.bin": contents[i % 5] + str(i).encode()})
    repo = b.build()
    with Trajectory.open(repo) as traj:
        ids = {c.new for commit in traj.commits for c in commit.changes
               if c.new and not c.path.startswith(".")}
        assert len(ids) == 40
        want = {sha: subprocess.run(["git", "cat-file", "blob", sha], cwd=repo, check=True,
                                    capture_output=True).stdout for sha in ids}
        traj.prefetch_code()
        traj.close()
        (repo / ".git").rename(repo / "moved")     # from here on only the prefetched bytes exist
        assert {sha: traj.blob(sha) for sha in ids} == want
