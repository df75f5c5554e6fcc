"""code_bytes, bytes_ratio, bytes_convergence and edit_distance from the final commit."""
from __future__ import annotations

import pytest

from validators import (
    Trajectory,
    bytes_convergence,
    bytes_ratio,
    code_bytes,
    edit_distance,
)


def tower(make_traj, sizes: dict[int, int], depth: int):
    b = make_traj()
    files = {f"h{n}.py": "#" * size for n, size in sizes.items()}
    b.init(depth=depth, files={f"h{depth}.py": files.pop(f"h{depth}.py")})
    b.key("h2_writer", "x", files=files)
    b.key("h2_writer", "y", files={"h1.py.bak": "ignored"})   # not a level file
    return Trajectory.open(b.build())


def test_depth_two_has_no_ratio_and_no_convergence(make_traj) -> None:
    with tower(make_traj, {1: 10, 2: 40}, depth=2) as traj:
        assert code_bytes.compute(traj) == {1: 10, 2: 40}
        assert bytes_ratio.compute(traj) == {}
        assert bytes_convergence.compute(traj) is None


def test_depth_three_convergence(make_traj) -> None:
    with tower(make_traj, {1: 10, 2: 40, 3: 50}, depth=3) as traj:
        assert code_bytes.compute(traj) == {1: 10, 2: 40, 3: 50}
        assert bytes_ratio.compute(traj) == {2: 1.25}
        assert bytes_convergence.compute(traj) == 0.25


def test_depth_four_takes_the_largest_deviation_either_way(make_traj) -> None:
    with tower(make_traj, {1: 10, 2: 40, 3: 50, 4: 30}, depth=4) as traj:
        assert bytes_ratio.compute(traj) == {2: 1.25, 3: 0.6}
        assert bytes_convergence.compute(traj) == pytest.approx(0.4)


def test_a_missing_level_file_leaves_its_values_undefined(make_traj) -> None:
    with tower(make_traj, {2: 40, 3: 50}, depth=3) as traj:
        assert code_bytes.compute(traj) == {1: None, 2: 40, 3: 50}
        assert bytes_ratio.compute(traj) == {2: 1.25}
        assert edit_distance.compute(traj) == {2: None, 3: 0.2}
    with tower(make_traj, {1: 5, 3: 50}, depth=3) as traj:
        assert bytes_ratio.compute(traj) == {2: None}
        assert bytes_convergence.compute(traj) is None


def test_code_bytes_counts_bytes_of_the_final_commit(make_traj) -> None:
    b = make_traj()
    b.init(depth=2, files={"h2.py": "x"})
    b.key("h2_writer", "a", files={"h1.py": "\u00e9\u20ac"})    # 5 bytes
    b.key("h2_writer", "b", files={"h2.py": "xyz"})             # the final version counts
    with Trajectory.open(b.build()) as traj:
        assert code_bytes.compute(traj) == {1: 5, 2: 3}


def test_edit_distance_is_levenshtein_over_the_longer_text(make_traj) -> None:
    b = make_traj()
    b.init(depth=3, files={"h3.py": "abcd"})
    b.key("h3_writer", "a", files={"h2.py": "abed", "h1.py": "\u00e9"})
    with Trajectory.open(b.build()) as traj:
        got = edit_distance.compute(traj)
    assert got[3] == 0.25                  # one substitution in four characters
    assert got[2] == 1.0                   # "abed" vs "é": 4 edits over 4 characters


def test_edit_distance_of_non_utf8_counts_bytes_as_characters(make_traj) -> None:
    b = make_traj()
    b.init(depth=2, files={"h2.py": b"\xff\xfeab"})
    b.key("h2_writer", "a", files={"h1.py": b"\xff\xfeac"})
    with Trajectory.open(b.build()) as traj:
        assert edit_distance.compute(traj) == {2: 0.25}
