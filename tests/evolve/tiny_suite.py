"""A suite of two train tasks and one validation task that depth-1 towers work through in seconds."""
from __future__ import annotations

TWO_TRAIN_ONE_VALIDATION = """
name: {name}
version: 1
tasks:
- {{id: hello, instruction: "Print the words hello world.", split: train, tier: 1,
   check: {{output: [hello world]}}, solution: [echo hello world]}}
- {{id: seven, instruction: "Print the number 7.", split: train, tier: 1,
   check: {{output: ["7"]}}, solution: [echo 7]}}
- {{id: bye, instruction: "Print the words good bye.", split: validation, tier: 1,
   check: {{output: [good bye]}}, solution: [echo good bye]}}
"""
