"""Built-in task suites (YAML): evaluator data, never the sandbox's.

A suite holds the answer key (every check and reference solution). It lives here, outside the
`harness_tower` package, because that package is the op library every sandbox sees: bubblewrap
binds it into panes and the sealed levels' audit hook lets them read it. Suites are read only
by the evaluator (`harness_tower.tasks.load_suite`).
"""
