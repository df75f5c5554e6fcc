"""Name why a tower failed, from what its terminals and its log showed.

A failed evaluation is stored with a specific reason ("sandbox denied network access:
...") rather than only the last line a harness printed.

>>> diagnose(["$ curl x", "curl: (6) Could not resolve host: x"], {})
'sandbox denied network access'
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

FLOOD_BYTES = 1 << 20  # far more output than typing a harness ever makes (a depth-3 tower: ~100 kB)

SIGNATURES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), why) for p, why in (
    (r"fork: (retry: )?Resource temporarily unavailable|Cannot fork|can't fork|BlockingIOError",
     "resource limit: processes"),
    (r"File size limit exceeded|File too large", "resource limit: file size"),
    (r"CPU time limit exceeded", "resource limit: cpu time"),
    (r"MemoryError|Cannot allocate memory|cannot allocate memory", "resource limit: memory"),
    (r"error connecting to .*tmux|no server running on|tmux: .*(Permission denied|No such file)|"
     r"error connecting to /tmp/", "direct tmux access denied"),
    (r"not a git repository|fatal: .*\.trajectory\.git", "the trajectory's git directory is out of reach"),
    (r"Network is unreachable|Could not resolve host|Temporary failure in name resolution|"
     r"Name or service not known|Connection refused", "sandbox denied network access"),
    (r"Read-only file system|Permission denied", "sandbox denied access outside the work tree"),
    (r"Operation not permitted|No such process", "signalling outside the sandbox denied"),
))


def diagnose(texts: Iterable[str], output_bytes: Mapping[str, int]) -> str | None:
    """The most specific reason found, or None when nothing recognisable shows."""
    flooded = [s for s, n in output_bytes.items() if n > FLOOD_BYTES]
    if flooded:
        worst = max(flooded, key=lambda s: output_bytes[s])
        return f"terminal flooded: {worst} produced {output_bytes[worst] / 1e6:.1f} MB of output"
    blob = "\n".join(texts)
    for pattern, why in SIGNATURES:
        if pattern.search(blob):
            return why
    return None
