"""Slots: values an instruction names, templates filled from them, commands generalised."""
from __future__ import annotations

import doctest

import pytest

from harness_tower import slots
from harness_tower.slots import extract, fill, generalise


def test_the_module_examples_hold() -> None:
    assert doctest.testmod(slots).failed == 0


@pytest.mark.parametrize("instruction, expected", [
    ("Count the lines of notes.txt.", {"file": "notes.txt"}),
    ("Print the first 3 lines of data/people.csv.", {"file": "data/people.csv", "n": "3"}),
    ('Say "hello world".', {"text": "hello world"}),
    ("Create a directory called logs and put a file app.log in it.", {"dir": "logs", "file": "app.log"}),
    ("Copy a.txt to b.txt", {"file": "a.txt", "file2": "b.txt"}),
    ("Print 'v1.2' and nothing else", {"text": "v1.2"}),  # a quoted value names no other slot
    ("Print the words hello world.", {"words": "hello world"}),
    ("Print the word banana in capital letters.", {"words": "banana"}),
    ("Create a file called notes.txt containing the single line: buy milk", {"file": "notes.txt", "words": "buy milk"}),
    ("Add the line call mom to the end of todo.txt.", {"words": "call mom", "file": "todo.txt"}),
    ("Print the words route 66.", {"words": "route 66"}),  # named words hold no number
    ("Save the lines of access.log with status 404 into missing.txt", {"file": "access.log", "file2": "missing.txt",
                                                                       "n": "404"}),  # "lines": not named words
])
def test_extract_names_the_values_an_instruction_gives(instruction: str, expected: dict[str, str]) -> None:
    assert extract(instruction) == expected


def test_fill_quotes_on_request_and_refuses_missing_slots() -> None:
    s = {"text": "it's here", "file": "out.txt"}
    assert fill("echo {text_q} > {file}", s) == "echo 'it'\"'\"'s here' > out.txt"
    assert fill("echo {text} > {file}", s) == "echo it's here > out.txt"
    assert fill("sort {file2}", s) is None


@pytest.mark.parametrize("command, instruction, template", [
    ("wc -l < notes.txt", "How many lines does notes.txt have?", "wc -l < {file}"),
    ("echo 'hello world'", 'Say "hello world".', "echo {text_q}"),
    ("head -n 3 data/people.csv", "Print the first 3 lines of data/people.csv.", "head -n {n} {file}"),
    ("mkdir logs && touch logs/app.log", "Create a directory called logs and put a file app.log in it.",
     "mkdir {dir} && touch {dir}/{file}"),
    ("cp a.txt b.txt", "Copy a.txt to b.txt", "cp {file} {file2}"),
    ("echo ok ok ok", "Print the word ok three times on one line.", "echo {words} {words} {words}"),
    ("echo started > logs/run.log", "Save the line started into logs/run.log.", "echo {words} > {file}"),
])
def test_generalise_then_fill_gives_the_command_back(command: str, instruction: str, template: str) -> None:
    found = extract(instruction)
    assert generalise(command, found) == template
    assert fill(template, found) == command
