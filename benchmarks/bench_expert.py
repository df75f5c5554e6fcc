"""Cost of one expert call through the `openai` backend: answered by the endpoint (a cache
miss: retrieval, prompt, HTTP, generation, cache write, usage line) vs answered from the
response cache (what a re-evaluation pays), side by side in one run. Endpoints: `evolve
serve` on an untrained MicroAccordion (in this process, on loopback) and, with --llama,
llama.cpp's server on SmolLM2-135M (started here; needs scripts/setup_llama.sh).

Run: .venv/bin/python benchmarks/bench_expert.py [--calls 20] [--tokens 16] [--llama]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness_tower import ft
from harness_tower.backends import openai as oa


def experience() -> ft.Experience:
    return ft.Experience([(f"$ step {i} of the build\n$ make target{i - 1}", f"k{i}", f"make target{i}", 1.0)
                          for i in range(64)])


def measure(base: str, model: str, calls: int, tokens: int, cache: Path, round_: int) -> tuple[float, float]:
    """(ms per miss, ms per hit) over `calls` distinct queries, each asked twice."""
    cfg = oa.replace(oa.Config.for_endpoint(base, model, {"max_tokens": tokens, "temperature": 0}, environ={}),
                     cache_dir=cache, log_path=cache / "usage.jsonl")
    backend, exp = oa.OpenAIBackend(cfg), experience()
    queries = [f"$ step {i} of the build (round {round_})" for i in range(calls)]
    t = time.perf_counter()
    for q in queries:
        backend(exp, q, 2)
    miss = (time.perf_counter() - t) / calls
    t = time.perf_counter()
    for q in queries:
        backend(exp, q, 2)
    hit = (time.perf_counter() - t) / calls
    return miss * 1000, hit * 1000


def serve_tiny(tmp: Path) -> tuple[str, object]:
    from accordion.checkpoint import Checkpoint, save_checkpoint
    from accordion.model import AccordionConfig, MicroAccordion
    from harness_tower.serve import ModelServer, load_model, make_server

    ck = save_checkpoint(tmp / "tiny.pt", Checkpoint(MicroAccordion(AccordionConfig(block_size=64))))
    httpd = make_server(ModelServer(load_model(str(ck)), "tiny"))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}/v1", httpd


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--llama", action="store_true", help="also measure llama.cpp's server on SmolLM2-135M")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-expert-"))
    endpoints = [("evolve serve (MicroAccordion, untrained)", *serve_tiny(tmp), "tiny")]
    procs = []
    if args.llama:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        import subprocess

        from tests.harness_tower.expert_servers import (
            free_port,
            smollm2_gguf,
            wait_http,
        )
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf()),
                                 "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        wait_http(f"http://127.0.0.1:{port}/v1/models", 180, proc)
        endpoints.append(("llama.cpp server (SmolLM2-135M Q4_1)", f"http://127.0.0.1:{port}/v1", None, "smollm2"))
    try:
        results: dict[str, list[tuple[float, float]]] = {name: [] for name, *_ in endpoints}
        for r in range(args.repeats):  # interleaved: each repeat measures every endpoint
            for name, base, _, model in endpoints:
                results[name].append(measure(base, model, args.calls, args.tokens, tmp / f"cache-{r}", r))
        print("| endpoint | ms / call, answered by the endpoint | ms / call, from the cache | ratio |")
        print("|---|---:|---:|---:|")
        for name, pairs in results.items():
            miss = statistics.median(p[0] for p in pairs)
            hit = statistics.median(p[1] for p in pairs)
            print(f"| {name} | {miss:.2f} | {hit:.3f} | {miss / hit:.0f}x |")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
