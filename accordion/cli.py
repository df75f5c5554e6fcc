"""`evolve accordion train|query|grow|inspect`: train, sample, grow and inspect MicroAccordions.

torch is imported inside the handlers, so `evolve --help` does not pay for it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accordion.errors import AccordionError

if TYPE_CHECKING:
    import torch

    from accordion.checkpoint import Checkpoint


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("accordion", help="train, sample, grow and inspect MicroAccordion byte models")
    acc = p.add_subparsers(dest="accordion_command", metavar="ACTION")
    p.set_defaults(handler=lambda args: _help(p))

    t = acc.add_parser("train", help="train a model (the built-in corpus unless --corpus is given)")
    t.add_argument("--corpus", action="extend", nargs="+", default=[], metavar="FILE|REPO",
                   help="text files or git trajectory repositories (*.py and .captures/** of all commits)")
    t.add_argument("--with-builtin", action="store_true", help="add the built-in corpus to --corpus")
    t.add_argument("--steps", type=int, default=300, help="optimizer steps (default 300)")
    t.add_argument("--out", default="accordion.pt", help="checkpoint to write (default accordion.pt)")
    t.add_argument("--resume", metavar="CKPT", help="continue from this checkpoint (its sizes win)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--context", type=int, default=48, help="context in bytes (default 48)")
    t.add_argument("--d-model", type=int, default=32)
    t.add_argument("--blocks", type=int, default=1)
    t.add_argument("--heads", type=int, default=1)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--no-quant", action="store_true", help="train without 4-bit fake quantization")
    t.add_argument("--no-grow", action="store_true", help="never grow on a plateau")
    t.add_argument("--no-mutate", action="store_true", help="never mutate on a plateau")
    t.add_argument("--patience", type=int, default=150, help="steps without improvement that make a plateau")
    t.add_argument("--max-blocks", type=int, default=4)
    t.add_argument("--max-heads", type=int, default=8)
    t.add_argument("--max-d-model", type=int, default=256)
    t.add_argument("--width-delta", type=int, default=16, help="channels added per width growth")
    t.add_argument("--holdout", type=float, default=0.1, help="held-out share (default 0.1)")
    t.add_argument("--split", choices=("tail", "group"), default="tail",
                   help="held-out: the tail of every document, or whole files/repositories by hash")
    t.add_argument("--eval-every", type=int, default=50)
    t.add_argument("--kernel-db", action="store_true", help="route training forwards through the KernelDB")
    t.add_argument("--allow-train-bypass", action="store_true",
                   help="let trusted KernelDB entries skip blocks in training (no gradient through them)")
    t.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    t.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    t.set_defaults(handler=cmd_train)

    q = acc.add_parser("query", help="sample bytes after a prompt")
    q.add_argument("checkpoint", metavar="CKPT")
    q.add_argument("--prompt", required=True)
    q.add_argument("--max-bytes", type=int, default=200)
    q.add_argument("--seed", type=int, default=0, help="the same seed gives the same bytes")
    q.add_argument("--temperature", type=float, default=0.8, help="0 is greedy")
    q.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest bytes (0: all)")
    q.add_argument("--kernel-db", action="store_true", help="memoize blocks through the checkpoint's KernelDB")
    q.add_argument("--device", default="auto")
    q.set_defaults(handler=cmd_query)

    g = acc.add_parser("grow", help="grow a checkpoint; the function is kept (and checked)")
    g.add_argument("checkpoint", metavar="CKPT")
    g.add_argument("--out", required=True, metavar="CKPT")
    g.add_argument("--blocks", type=int, default=0, help="blocks to add (identity at birth)")
    g.add_argument("--head-steps", type=int, default=0, help="heads to add to every block (silent at birth)")
    g.add_argument("--width-delta", type=int, default=0, help="residual channels to add")
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(handler=cmd_grow)

    i = acc.add_parser("inspect", help="print a checkpoint's sizes, footprint and KernelDB statistics as JSON")
    i.add_argument("checkpoint", metavar="CKPT")
    i.set_defaults(handler=cmd_inspect)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _device(name: str) -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise AccordionError(f"--device must be cpu, cuda or auto (got {name!r})")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise AccordionError("--device cuda: no CUDA device is available")
    return torch.device(name)


def _positive(**values: float) -> None:
    for name, value in values.items():
        if value < 1:
            raise AccordionError(f"--{name.replace('_', '-')} must be >= 1 (got {value:g})")


# -- train ------------------------------------------------------------------------------------

def cmd_train(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from accordion.checkpoint import load_checkpoint
    from accordion.corpus import ByteCorpus, builtin_documents, documents_from
    from accordion.kernel_db import KernelDB
    from accordion.model import AccordionConfig, MicroAccordion
    from accordion.mutator import LuminosityMutator, MutatorConfig
    from accordion.train import TrainConfig, Trainer

    if args.steps < 0:
        raise AccordionError(f"--steps must be >= 0 (got {args.steps})")
    _positive(context=args.context, d_model=args.d_model, blocks=args.blocks, heads=args.heads,
              batch_size=args.batch_size, patience=args.patience, eval_every=args.eval_every)
    if not 0.0 <= args.holdout < 1.0:
        raise AccordionError(f"--holdout must be in [0, 1) (got {args.holdout:g})")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise AccordionError(f"--out {out}: directory {out.parent} does not exist")
    for spec in args.corpus:
        if not Path(spec).exists():
            raise AccordionError(f"--corpus {spec}: no such file or repository")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = _device(args.device)

    def documents() -> Any:
        if not args.corpus or args.with_builtin:
            yield from builtin_documents()
        for spec in args.corpus:
            yield from documents_from(spec)

    docs: Any = documents()
    corpus = ByteCorpus(docs, holdout=args.holdout, split=args.split)
    if corpus.size("train") < args.context + 1:
        raise AccordionError(f"the corpus has {corpus.size('train')} training bytes; --context {args.context} "
                             f"needs at least {args.context + 1}")
    tcfg = TrainConfig(batch_size=args.batch_size, lr=args.lr, seed=args.seed, eval_every=args.eval_every,
                       patience=args.patience, mutate=not args.no_mutate, grow=not args.no_grow,
                       max_blocks=args.max_blocks, max_heads=args.max_heads, max_d_model=args.max_d_model,
                       width_delta=args.width_delta, use_kernel_db=args.kernel_db,
                       allow_train_bypass=args.allow_train_bypass)
    sources = [str(s) for s in args.corpus] or ["builtin"]
    if args.resume:
        ck = load_checkpoint(args.resume, device)
        trainer = Trainer(ck.model, corpus, tcfg, kernel_db=ck.kernel_db or KernelDB(),
                          mutator=ck.mutator or LuminosityMutator(MutatorConfig(seed=args.seed)),
                          device=device, meta={**ck.meta, "sources": sources}, state=ck.trainer)
    else:
        mcfg = AccordionConfig(block_size=args.context, d_model=args.d_model, n_blocks=args.blocks,
                               n_heads=args.heads, quantize=not args.no_quant)
        model = MicroAccordion(mcfg, generator=torch.Generator().manual_seed(args.seed))
        trainer = Trainer(model, corpus, tcfg, kernel_db=KernelDB(), device=device,
                          mutator=LuminosityMutator(MutatorConfig(seed=args.seed)), meta={"sources": sources})

    console = Console(stderr=True)
    columns = (TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("train", total=args.steps, info="")

        def on_step(info: Any) -> None:
            mc = trainer.model.config
            text = f"loss {info.ema:.3f}  d{mc.d_model} b{mc.n_blocks} h{mc.n_heads}"
            if info.events:
                progress.console.print(f"step {info.step}: {', '.join(info.events)}")
            progress.update(task, advance=1, info=text)

        trainer.run(args.steps, on_step)
    ev = trainer.evaluate()
    trainer.history.append({"step": trainer.step, "eval_loss": ev["loss"], "eval_bpb": ev["bpb"], "events": []})
    trainer.save(out)
    s = trainer.summary()
    print(f"saved {out}: step {s['step']}, held-out {ev['bpb']:.3f} bits/byte, d_model {s['d_model']}, "
          f"blocks {s['n_blocks']}, heads {s['n_heads']}, {s['tokens_per_second']:.0f} tokens/s")
    return 0


# -- query ------------------------------------------------------------------------------------

def cmd_query(args: argparse.Namespace) -> int:
    from accordion.checkpoint import load_checkpoint

    if args.max_bytes < 0:
        raise AccordionError(f"--max-bytes must be >= 0 (got {args.max_bytes})")
    if args.temperature < 0:
        raise AccordionError(f"--temperature must be >= 0 (got {args.temperature:g})")
    ck = load_checkpoint(args.checkpoint, _device(args.device))
    kdb = ck.kernel_db if args.kernel_db else None
    if args.kernel_db and kdb is None:
        raise AccordionError(f"{args.checkpoint} holds no KernelDB")
    text = ck.model.generate(args.prompt.encode("utf-8"), args.max_bytes, temperature=args.temperature,
                             top_k=args.top_k or None, seed=args.seed, kernel_db=kdb,
                             step=int(ck.meta.get("step", 0)))
    sys.stdout.write(text.decode("utf-8", errors="replace") + "\n")
    return 0


# -- grow -------------------------------------------------------------------------------------

def cmd_grow(args: argparse.Namespace) -> int:
    import torch

    from accordion.checkpoint import load_checkpoint, save_checkpoint
    from accordion.cold_start import COLD_START
    from accordion.grow import grow, logit_drift
    from accordion.model import quant_scale

    if min(args.blocks, args.head_steps, args.width_delta) < 0:
        raise AccordionError("--blocks, --head-steps and --width-delta must be >= 0")
    if not (args.blocks or args.head_steps or args.width_delta):
        raise AccordionError("nothing to grow: give --blocks, --head-steps or --width-delta")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise AccordionError(f"--out {out}: directory {out.parent} does not exist")
    ck = load_checkpoint(args.checkpoint)
    before = ck.model
    after = grow(before, blocks=args.blocks, head_steps=args.head_steps, width_delta=args.width_delta,
                 generator=torch.Generator().manual_seed(args.seed))
    probe = torch.tensor([list(COLD_START.encode()[: before.config.block_size])])  # (1, T)
    drift = logit_drift(before, after, probe)
    # exact up to float rounding; with quantization one step of the output layer is the bound
    bound = 1e-5
    if before.config.quantize:
        bound = max(bound, float(quant_scale(before.lm_head.weight, before.config.bits).max()))
    if drift > bound:
        raise AccordionError(f"growth changed the logits by {drift:.3g} (> {bound:.3g}); refusing to write {out}")
    if ck.kernel_db is not None:
        ck.kernel_db.invalidate(below_generation=after.config.generation)
    grown = list(ck.meta.get("grown", [])) + [{"blocks": args.blocks, "head_steps": args.head_steps,
                                               "width_delta": args.width_delta, "max_logit_drift": drift}]
    ck.meta["grown"] = grown
    if ck.trainer is not None:  # the optimizer's moments no longer match the parameters
        ck.trainer = {k: v for k, v in ck.trainer.items() if k != "optimizer"}
    ck.model = after
    save_checkpoint(out, ck)
    print(json.dumps({"out": str(out), "before": _sizes(before.config), "after": _sizes(after.config),
                      "max_logit_drift": drift}, indent=2))
    return 0


# -- inspect ----------------------------------------------------------------------------------

def _sizes(cfg: Any) -> dict[str, int]:
    return {"d_model": cfg.d_model, "n_blocks": cfg.n_blocks, "n_heads": cfg.n_heads, "head_dim": cfg.hs,
            "context": cfg.block_size, "generation": cfg.generation}


def inspect_dict(ck: Checkpoint) -> dict[str, Any]:
    cfg = ck.model.config
    return {
        "sizes": _sizes(cfg),
        "config": cfg.to_dict(),
        "parameters": ck.model.num_params(),
        "footprint": ck.model.footprint(),
        "bytes_4bit": ck.model.footprint()["quantized_bytes"],
        "generation": cfg.generation,
        "kernel_db": ck.kernel_db.stats() if ck.kernel_db is not None else None,
        "mutator": dict(ck.mutator.stats) if ck.mutator is not None else None,
        "meta": ck.meta,
        "history": (ck.trainer or {}).get("history", [])[-5:],
    }


def cmd_inspect(args: argparse.Namespace) -> int:
    from accordion.checkpoint import load_checkpoint

    print(json.dumps(inspect_dict(load_checkpoint(args.checkpoint)), indent=2, default=str))
    return 0
