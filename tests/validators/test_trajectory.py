"""Reading a trajectory's history: commits, sessions, trailers, changes, errors."""
from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from tests.validators.conftest import Exec, Gitlink, Link
from validators import (
    NotATrajectoryError,
    RepositoryError,
    Trajectory,
    UnknownSessionError,
    code_bytes,
)
from validators.trailers import label_of, parse_message
from validators.trajectory import GITLINK, MANIFEST, SYMLINK


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


# -- what init holds, and entries that are not regular files -------------------------------

def test_the_manifest_is_read_from_init_never_from_a_later_tree(make_traj) -> None:
    b = make_traj()
    b.init(depth=2, files={"h2.py": "x = 1\n"})
    forged = {"depth": 5, "task": {"expected": "anything"}, "prompt": "$ "}
    b.key("h2_writer", "a", files={".tower/manifest.json": json.dumps(forged)})
    b.key("h2_writer", "b", files={".tower/manifest.json": None})
    with Trajectory.open(b.build()) as traj:
        assert traj.manifest is not None and traj.manifest["depth"] == 2
        assert traj.depth == 2
        assert traj.is_trajectory
        assert MANIFEST not in traj.final_tree          # deleted later: init still counts


def test_a_repository_without_init_is_not_a_trajectory(make_traj) -> None:
    b = make_traj()
    b.commit("first", {".tower/manifest.json": '{"depth": 1}', "h1.py": "x\n"})
    with Trajectory.open(b.build()) as traj:
        assert traj.manifest is None and not traj.is_trajectory
        with pytest.raises(NotATrajectoryError, match="root commit is 'first'"):
            traj.require_trajectory()
    b = make_traj()
    b.commit("init", {".tower/manifest.json": "[1, 2]"})      # not a JSON object
    with Trajectory.open(b.build()) as traj, pytest.raises(NotATrajectoryError, match="no"):
        traj.require_trajectory()


def test_modes_are_kept_and_only_regular_files_have_content(make_traj) -> None:
    b = make_traj()
    b.init(depth=2, files={"h2.py": "x = 1\n"})
    b.key("h2_writer", "a", files={"h1.py": Link("h2.py"), "run.sh": Exec("echo\n"),
                                   "vendor": Gitlink("2" * 40)})
    b.key("h2_writer", "b", files={"h1.py": "print(1)\n"})       # the link becomes a file
    with Trajectory.open(b.build()) as traj:
        first = {c.path: c for c in traj.commits[1].changes}
        link, script, module = first["h1.py"], first["run.sh"], first["vendor"]
        assert (link.new_mode, link.new, link.new_id is not None) == (SYMLINK, None, True)
        assert traj.blob(link.new_id) == b"h2.py"                 # its blob is the target
        assert (script.new_mode, script.new is not None) == ("100755", True)
        assert (module.new_mode, module.new, module.new_id) == (GITLINK, None, "2" * 40)
        second = {c.path: c for c in traj.commits[2].changes}["h1.py"]
        assert (second.old_mode, second.old, second.new_mode) == (SYMLINK, None, "100644")
        assert "vendor" not in traj.final_tree and traj.final_tree["run.sh"] == script.new


def test_a_symlinked_level_file_has_no_code_bytes(make_traj) -> None:
    b = make_traj()
    b.init(depth=2, files={"h2.py": "x = 1\n"})
    b.key("h2_writer", "a", files={"h1.py": Link("abc")})        # a 3-byte link target
    with Trajectory.open(b.build()) as traj:
        assert traj.level_files == {2: traj.init_tree["h2.py"]}
        assert code_bytes.compute(traj) == {1: None, 2: 6}


def test_each_key_commit_knows_its_own_capture(make_traj) -> None:
    b = make_traj()
    b.init()
    b.key("h2_writer", "a", capture="screen one\n")
    b.key("h1_writer", "b", record=False)
    b.key("h2_writer", "c", capture="screen two\n")
    with Trajectory.open(b.build()) as traj:
        texts = [traj.capture_text(c) for c in traj.key_commits]
        assert texts == ["screen one\n", "", "screen two\n"]


def test_prefetch_while_reading_the_log_gives_the_exact_bytes(make_traj) -> None:
    contents = [b"", b"\x00\xff\n" * 7, "caf\u00e9\n".encode(), b"x\n" * 50000, b"\n"]
    b = make_traj()
    b.init(files={"h2.py": b"top\n"})
    for i in range(40):
        b.key("h2_writer", str(i), files={f"f{i % 3}.py": contents[i % 5] + str(i).encode(),
                                          "lnk.py": Link(f"t{i}")})
    repo = b.build()
    with Trajectory.open(repo) as lazy:
        ids = {c.new for commit in lazy.commits for c in commit.changes
               if c.new and not c.path.startswith(".")}
        want = {sha: lazy.blob(sha) for sha in ids}
    with Trajectory.open(repo, prefetch=True) as traj:
        traj.close()
        (repo / ".git").rename(repo / "moved")     # only what was prefetched is left
        assert {sha: traj.blob(sha) for sha in ids} == want and len(want) == 41
        links = {c.new_id for commit in traj.commits for c in commit.changes if c.path == "lnk.py"}
        assert not links & set(traj._blobs)        # a link's blob is no code: never fetched
