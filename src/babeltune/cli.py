"""The ``babeltune`` command: thin, it parses arguments and calls the experiment runner.

Every command takes an experiment YAML (default: ./configs/default.yaml) and ``--group.field=value``
overrides, e.g. ``babeltune run configs/quick.yaml --train.epochs=1``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

from babeltune.registry import BabeltuneError

STAGES = ["data", "translate", "mix", "train", "generate", "evaluate", "report"]
DEFAULT_CONFIG = Path("configs/default.yaml")

STAGE_HELP = {
    "data": "load training examples and test prompts into the run directory",
    "translate": "machine-translate the source-language data into the other languages (cached, filtered)",
    "mix": "compose the training mixtures (monolingual, multilingual, english-only, downsampled) under the budget",
    "train": "fine-tune every model x method x mixture of the grid (LoRA or full-parameter)",
    "generate": "answer the test prompts with every tuned model",
    "evaluate": "language ID, chrF and the LLM judge for every answer",
    "report": "tables, plots and the HTML report over all runs",
}


def _overrides_epilog() -> str:
    from babeltune.config import describe

    rows = describe()
    width = max(len(name) for name, _, _ in rows) + 2
    lines = ["config fields (set in the YAML, or override with --FIELD=VALUE):"]
    lines += [f"  {name:<{width}}{help} [default: {default}]" for name, default, help in rows]
    return "\n".join(lines)


DEBUG_HELP = "show Python tracebacks for errors"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="babeltune",
        description="Monolingual or multilingual instruction tuning under a fixed budget: build data, compose "
        "mixtures, fine-tune, generate, evaluate (LLM judge + language ID + chrF) and report, from one YAML file.",
        epilog="Start with `babeltune run` (the offline demo in configs/default.yaml), then open the printed report.",
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_debug(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        # SUPPRESS: a subcommand without --debug keeps the value given before the command
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
        return p

    def add(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help,
            description=help,
            epilog=_overrides_epilog(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("config", nargs="?", type=Path, help=f"experiment YAML (default: {DEFAULT_CONFIG})")
        return with_debug(p)

    run_cmd = add("run", "run the whole experiment grid, reusing every finished stage")
    run_cmd.add_argument(
        "--task",
        type=int,
        metavar="ID",
        help="run only training run ID of the grid (see plan; for Slurm arrays)",
    )
    compare = add(
        "compare", "judge two runs of the grid against each other on the same prompts, in both orders"
    )
    compare.add_argument("--runs", nargs=2, metavar=("RUN_A", "RUN_B"), required=True,
                         help="run names as the report shows them, e.g. smollm2-135m/lora/mono-es")  # fmt: skip
    agree = sub.add_parser(
        "judge-agreement",
        help="correlate judge scores with human scores (item and system level, per language)",
        description="Pearson and Spearman correlation between judge and human scores, per item and per system "
        "(run), for each language. HUMAN_SCORES is CSV or JSONL with id, run and score.",
    )
    agree.add_argument("human_scores", type=Path, help="CSV or JSONL: id (e.g. test-01:es), run, score")
    agree.add_argument(
        "scores", nargs="+", type=Path, help="scores.jsonl files, or run directories to search"
    )
    with_debug(agree)
    serve = sub.add_parser(
        "serve",
        help="serve a model through an OpenAI-compatible HTTP API",
        description="Serve a base model, a tuned adapter or the embedded model at /v1/chat/completions, "
        "/v1/completions and /v1/models, with the template it was trained with.",
    )
    serve.add_argument("checkpoint", help="a training folder (runs/NAME/train/TASK), a PEFT adapter or model folder, "
                       "builtin:smollm2-135m, or a hub id")  # fmt: skip
    serve.add_argument(
        "--base", help="base model of a bare adapter folder (default: from adapter_config.json)"
    )
    serve.add_argument(
        "--template", choices=["alpaca", "chat"], help="prompt template (default: the training one)"
    )
    serve.add_argument("--name", help="model id to serve under (default: the folder name)")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)"
    )
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    serve.add_argument(
        "--api-key-env", help="require `Authorization: Bearer <key>` with the key in this variable"
    )
    serve.add_argument(
        "--max-tokens", type=int, default=1024, help="largest max_tokens a request may ask for"
    )
    serve.add_argument(
        "--max-request-bytes", type=int, default=1_000_000, help="largest request body accepted"
    )
    with_debug(serve)
    plan_cmd = add(
        "plan",
        "print the grid's tasks, mixtures and budget (in units of C, tokens, GPU hours) and what is done",
    )
    plan_cmd.add_argument(
        "--slurm",
        type=Path,
        metavar="FILE",
        help="also write an sbatch array script: one task per training run",
    )
    add("show-config", "print the fully resolved configuration (defaults + YAML + overrides)")
    for stage in STAGES:
        p = add(stage, f"{STAGE_HELP[stage]} (runs earlier stages first when needed)")
        if stage == "generate":
            p.add_argument(
                "--shard",
                metavar="I/N",
                help="answer only shard I of N (after training is done); "
                "a later unsharded `babeltune generate` or `run` merges the shards",
            )
    return parser


def _load(args: argparse.Namespace, overrides: list[str]):
    from babeltune import config

    path = args.config
    if path is None:
        if not DEFAULT_CONFIG.exists():
            raise BabeltuneError(
                f"no config given and {DEFAULT_CONFIG} does not exist here; pass a YAML file"
            )
        path = DEFAULT_CONFIG
    bad = [o for o in overrides if not o.startswith("--") or "=" not in o]
    if bad:
        raise BabeltuneError(f"unrecognised argument {bad[0]!r}; overrides look like --train.epochs=1")
    return config.load(path, overrides)


def _print_plan(plan, config: Path, slurm: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 140))
    unit = plan.cfg.mix.budget_unit
    budget = plan.mixtures[0]["budget_C"] if plan.mixtures else "?"
    table = Table(
        title=f"mixtures of {plan.cfg.name}: C = {budget} {unit} (one monolingual run)", title_justify="left"
    )
    for col in (
        "mixture",
        "regime",
        "examples",
        "tokens",
        "cost (C)",
        "runs",
        "total cost (C)",
        "per language",
    ):
        table.add_column(col)
    runs = len(plan.cfg.models) * len(plan.cfg.train.methods)
    for m in plan.mixtures:
        langs = ", ".join(f"{k} {v}" for k, v in m["per_language"].items())
        tokens = "–" if m["tokens"] is None else str(m["tokens"])
        total = round(m["cost_in_C"] * runs, 3)
        table.add_row(
            m["name"],
            m["regime"],
            str(m["examples"]),
            tokens,
            str(m["cost_in_C"]),
            str(runs),
            str(total),
            langs,
        )
    console.print(table)
    from babeltune.planning import EFFECTIVE_FLOPS, TOKENS_PER_EXAMPLE, slurm_script, training_rows

    rows = training_rows(plan)
    runs = Table(title="training runs (task IDs for --task and Slurm)", title_justify="left")
    for col in ("task", "run", "regime", "examples", "tokens", "cost (C)", "params (B)", "GPU hours"):
        runs.add_column(col)
    for r in rows:
        tokens = str(r["tokens"]) if r["tokens_counted"] else f"~{r['tokens']}"
        runs.add_row(str(r["task"]), r["run"], r["regime"], str(r["examples"]), tokens, str(r["cost_in_C"]),
                     str(r["parameters_b"] or "?"), str(r["gpu_hours"] or "?"))  # fmt: skip
    console.print(runs)
    total = sum(r["gpu_hours"] or 0 for r in rows)
    console.print(
        f"{len(rows)} training runs, {sum(r['cost_in_C'] for r in rows):g} C in all, about {total:.1f} GPU hours of training "
        f"(estimate: {EFFECTIVE_FLOPS / 1e12:.0f} TFLOP/s effective; ~ marks tokens estimated at {TOKENS_PER_EXAMPLE} per example)"
    )
    if slurm:
        from babeltune.io import atomic_write_text

        atomic_write_text(slurm, slurm_script(plan, config, rows))
        console.print(f"Slurm array script: {slurm} (sbatch {slurm})")
    tasks = Table(title=f"tasks in {plan.cfg.run_dir}")
    for col in ("stage", "name", "key", "status"):
        tasks.add_column(col)
    for t in plan.tasks:
        tasks.add_row(t.stage, t.name, t.key, "done" if t.done else "to do")
    console.print(tasks)


def _print_translation(plan) -> None:
    """Per-language counts of the translate stage: what was kept, filtered, failed, cached, and at what cost."""
    from rich.console import Console
    from rich.table import Table

    from babeltune.io import read_json

    (task,) = [t for t in plan.tasks if t.stage == "translate"]
    report = read_json(task.out_dir / "translate_report.json")
    quality = (
        read_json(task.out_dir / "mt_quality.json") if (task.out_dir / "mt_quality.json").exists() else {}
    )
    table = Table(
        title=f"translation {report['source_language']} -> ... with {report['backend']}:{report['model']}"
    )
    columns = [
        "items",
        "accepted",
        "rejected",
        "failed",
        "segments",
        "cache_hits",
        "translated_now",
        "seconds",
    ]
    for col in ["language", *columns, "chrF", "top rejection reasons"]:
        table.add_column(col)
    for lang, rep in report["languages"].items():
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(rep["reasons"].items(), key=lambda kv: -kv[1])[:3])
        chrf = str(quality[lang]["chrF"]) if lang in quality else "–"
        table.add_row(lang, *(str(rep[c]) for c in columns), chrf, reasons or "–")
    console = Console(width=max(Console().width, 160))  # a wide table is easier to read than a wrapped one
    console.print(table)
    usage = report["usage"]
    console.print(
        f"calls {usage['calls']}, retries {usage['retries']}, tokens {usage['input_tokens']} in / "
        f"{usage['output_tokens']} out, cost {usage['cost']}; files in {task.out_dir}"
    )


SUMMARY_METRICS = [
    (
        "consistency",
        "language consistency (% of answers in the prompt's language)",
        lambda v: f"{100 * v:.0f}",
    ),
    ("chrf", "chrF against the reference answer", lambda v: f"{v:.1f}"),
    ("score_mean", "mean score (judge x language match)", lambda v: f"{v:.2f}"),
]


def _print_summary(plan, seconds: float) -> None:
    """One small table per metric: runs as rows, languages as columns (unseen ones starred)."""
    from rich.console import Console
    from rich.table import Table

    from babeltune.io import read_jsonl
    from babeltune.report.aggregate import cells

    scores = {r.name: read_jsonl(r.scores) for r in plan.results}
    table_cells = cells(scores, set(plan.cfg.data.languages), plan.cfg.test.languages)
    langs = list(dict.fromkeys(c.lang for c in table_cells))
    seen = {c.lang: c.seen for c in table_cells}
    by = {(c.run, c.lang): c for c in table_cells}
    needed = max(len(run) for run in scores) + 8 * len(langs) + 8
    console = Console(width=max(Console().width, needed))  # never truncate run names in a log file
    for metric, title, fmt in SUMMARY_METRICS:
        table = Table(title=title, title_justify="left")
        table.add_column("run")
        for lang in langs:
            table.add_column(lang if seen[lang] else f"{lang}*", justify="right")
        for run in scores:
            values = [getattr(by[run, lang], metric) if (run, lang) in by else None for lang in langs]
            table.add_row(run, *("–" if v is None else fmt(v) for v in values))
        console.print(table)
    console.print("* unseen in training")
    console.print(f"done in {seconds:.0f} s; report: {plan.report_dir / 'report.html'}")


def _compare(plan, runs: list[str]) -> int:
    from rich.console import Console

    from babeltune.evaluate import pairwise
    from babeltune.experiment import execute
    from babeltune.io import read_json, read_jsonl

    by_name = {r.name: r for r in plan.results}
    for name in runs:
        if name not in by_name:
            from babeltune.registry import unknown_name_error

            raise unknown_name_error("run", name, by_name)
    plan.tasks = [t for t in plan.tasks if STAGES.index(t.stage) <= STAGES.index("generate")]
    execute(plan)
    a, b = (read_jsonl(by_name[n].responses) for n in runs)
    out = plan.cfg.run_dir / "compare" / "--vs--".join(n.replace("/", "-") for n in runs)
    summary = read_json(pairwise.run(plan.cfg.evaluate, a, b, tuple(runs), out))
    console = Console()
    o = summary["overall"]
    console.print(f"{runs[0]} vs {runs[1]} (judge {summary['judge']}): {o['a_wins']} : {o['b_wins']}, {o['ties']} ties, "
                  f"{o['unparsable']} unparsable; flip rate {o['flip_rate']}, first-position win rate "
                  f"{o['first_position_win_rate']}; details in {out}")  # fmt: skip
    return 0


def _judge_agreement(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from babeltune.evaluate.agreement import agreement, read_human_scores
    from babeltune.io import read_jsonl

    files = [
        p for s in args.scores for p in ([s] if s.is_file() else sorted(s.glob("**/evaluate/*/scores.jsonl")))
    ]
    if not files:
        raise BabeltuneError(f"judge-agreement: no scores.jsonl in {', '.join(map(str, args.scores))}")
    result = agreement([r for f in files for r in read_jsonl(f)], read_human_scores(args.human_scores))
    table = Table(title="judge vs human scores")
    cols = ["items", "systems", "item_pearson", "item_spearman", "system_pearson", "system_spearman"]
    for col in ["language", *cols]:
        table.add_column(col)
    for lang, row in result["per_language"].items():
        table.add_row(lang, *(str(row[c]) for c in cols))
    Console(width=120).print(table)
    return 0


def _serve(args: argparse.Namespace, extra: list[str]) -> int:
    from babeltune import serve

    if extra:
        raise BabeltuneError(f"serve: unrecognised argument {extra[0]!r}")
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise BabeltuneError(f"--api-key-env: environment variable {args.api_key_env} is not set")
    served = serve.load(args.checkpoint, args.base, args.template, args.name)
    limits = serve.Limits(max_tokens=args.max_tokens, max_request_bytes=args.max_request_bytes)
    server = serve.make_server(served, args.host, args.port, api_key, limits)
    host, port = server.server_address[:2]
    print(f"serving {served.name!r} ({served.template} template) at http://{host}:{port}/v1", flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a user stops serving
        server.serve_forever()
    return 0


def main(argv: list[str] | None = None) -> int:
    args, overrides = _parser().parse_known_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        if args.command == "serve":
            return _serve(args, overrides)
        if args.command == "judge-agreement":
            return _judge_agreement(args)
        cfg = _load(args, overrides)
        if args.command == "show-config":
            from babeltune.config import dump_yaml

            print(dump_yaml(cfg), end="")
            return 0
        from babeltune.experiment import build_plan, execute
        from babeltune.generate import parse_shard

        shard = parse_shard(args.shard) if getattr(args, "shard", None) else None
        plan = build_plan(cfg, shard)
        if shard and not all(t.done for t in plan.tasks if t.stage == "train"):
            raise BabeltuneError("--shard: train first (babeltune train CONFIG), then shard the generation")
        if args.command == "plan":
            _print_plan(plan, args.config or DEFAULT_CONFIG, args.slurm)
            return 0
        if getattr(args, "task", None) is not None:
            from babeltune.experiment import select_task

            select_task(plan, args.task)
        if args.command == "compare":
            return _compare(plan, args.runs)
        if args.command == "translate" and not cfg.translate.enabled:
            raise BabeltuneError(
                "translate.enabled is false: set it in the YAML or pass --translate.enabled=true"
            )
        if args.command in STAGES:
            last = STAGES.index(args.command)
            plan.tasks = [t for t in plan.tasks if STAGES.index(t.stage) <= last]
        start = time.perf_counter()
        execute(plan)
        if args.command in ("run", "report") and getattr(args, "task", None) is None:
            _print_summary(plan, time.perf_counter() - start)
        if args.command == "translate":
            _print_translation(plan)
        return 0
    except BabeltuneError as err:
        if args.debug:
            raise
        print(f"babeltune: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
