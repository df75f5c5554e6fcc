"""keys_audit: key commits that lack or break the trailer rules of SPEC §3."""
from __future__ import annotations

from validators import Trajectory, keys_audit


def audit(b) -> tuple[int, list[tuple[str, ...]]]:
    with Trajectory.open(b.build()) as traj:
        return keys_audit.compute(traj), [f.problems for f in keys_audit.findings(traj)]


def test_a_clean_trajectory_scores_zero(make_traj) -> None:
    b = make_traj()
    b.init()
    b.key("h2_writer", "cat > h1.py")
    b.key("h1_writer", "echo hello world")        # sessions number their Seq independently
    b.key("h2_writer", "Enter", "ctrl")
    b.key("h1_writer", "Enter", "ctrl")
    b.key("h2_writer", "x" * 16)                  # the longest text allowed
    b.key("h2_writer", "\u00a0\u00ff'\"\\")           # printable beyond ASCII, quotes
    for name in sorted(keys_audit.CTRL_KEYS):
        b.key("h2_writer", name, "ctrl")
    b.done()
    assert audit(b) == (0, [])


def test_non_ascii_keys_are_characters_not_bytes(make_traj) -> None:
    b = make_traj()
    b.init()
    b.key("h2_writer", "\u00e9\u20ac")                          # "\u00e9\u20ac" escapes
    b.key("h2_writer", "\u00e9\u20ac", ensure_ascii=False)      # raw UTF-8 in the message
    b.key("h2_writer", "\u20ac" * 16, ensure_ascii=False)       # 16 characters, 48 bytes
    b.key("h2_writer", "\u20ac" * 17, ensure_ascii=False)       # 17: too long
    count, problems = audit(b)
    assert count == 1 and problems == [("text of 17 characters",)]


def test_each_broken_rule_is_found(make_traj) -> None:
    ok = "Seq: {s}\nTime: 1.5"
    b = make_traj()
    b.init()
    b.commit('s: 1\n\nKeys: "abc\nKind: text\n' + ok.format(s=1))            # bad JSON
    b.commit('s: 2\n\nKeys: 3\nKind: text\n' + ok.format(s=2))               # not a string
    b.commit('s: 3\n\nKeys: "a"\nKind: meta\n' + ok.format(s=3))             # unknown Kind
    b.commit('s: 4\n\nKeys: ""\nKind: text\n' + ok.format(s=4))              # empty text
    b.commit('s: 5\n\nKeys: "F1"\nKind: ctrl\n' + ok.format(s=5))            # not allow-listed
    b.commit('s: 6\n\nKeys: "a"\nKind: text\nTime: 1.5')                     # no Seq
    b.commit('s: 7\n\nKeys: "a"\nKind: text\nSeq: 7')                        # no Time
    b.commit('s: 8\n\nKeys: "a"\nKind: text\nSeq: 8\nTime: noon')            # bad Time
    b.commit('s: 9\n\nKind: text\n' + ok.format(s=9))                        # no Keys
    b.commit('s: 10\n\nKeys: "a"\n' + ok.format(s=10))                       # no Kind
    b.commit('no session here\n\nKeys: "a"\nKind: text\n' + ok.format(s=1))  # no prefix
    b.commit('s: 12\n\nKeys: "a"\nKind: text\nKind: ctrl\n' + ok.format(s=11))  # repeated
    b.commit('s: 13\n\nKeys: "a"\nKind: text\n' + ok.format(s=12))           # fine
    b.commit('s: 14\n\nKeys: "a"\nKind: text\nSeq: x\nTime: 2')              # bad Seq
    b.commit("done", {})
    count, problems = audit(b)
    assert count == 13
    assert problems == [
        ("Keys is not a JSON string",), ("Keys is not a JSON string",), ("unknown Kind 'meta'",),
        ("text of 0 characters",), ("ctrl key 'F1' not allowed",), ("missing Seq",),
        ("missing Time",), ("Time is not a number",), ("missing Keys",), ("missing Kind",),
        ("subject has no session prefix",), ("repeated Kind",), ("Seq is not an integer",)]


def test_control_characters_inside_text_are_control_keys_in_disguise(make_traj) -> None:
    b = make_traj()
    b.init()
    for text in ("\x1a", "echo hi\r", "a\nb", "\t", "\x7f", "x\x9b", "\x1b[A"):
        b.key("h1_writer", text)
    b.key("h1_writer", "\u00a0ok")                # NBSP is text
    count, problems = audit(b)
    assert count == 7
    assert problems[0] == ("text holding the control character '\\x1a'",)
    assert problems[1] == ("text holding the control character '\\r'",)


def test_seq_must_start_at_one_and_count_up(make_traj) -> None:
    b = make_traj()
    b.init()
    for seq in (1, 2, 4, 5, 5, 6):        # a gap, then a repeat: two commits break the rule
        b.key("h2_writer", "a", seq=seq)
    b.key("h1_writer", "a", seq=2)        # a session's first Seq must be 1
    count, problems = audit(b)
    assert count == 3
    assert problems == [("Seq 4, expected 3",), ("Seq 5, expected 6",), ("Seq 2, expected 1",)]


def test_one_commit_breaking_many_rules_counts_once(make_traj) -> None:
    b = make_traj()
    b.init()
    b.commit("whatever", {"a.py": "x"})
    count, problems = audit(b)
    assert count == 1
    assert problems == [("subject has no session prefix", "missing Keys, Kind, Seq, Time")]


def test_init_and_done_are_not_key_commits_but_a_done_mid_history_is(make_traj) -> None:
    b = make_traj()
    b.init()
    b.commit("done")
    b.key("h2_writer", "a")
    b.done()
    assert audit(b)[0] == 1
