"""The command's promise on bad input: whatever a user types or feeds in, one line and exit 2, never a
traceback (100+ hostile inputs through every command)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import pytest

from conftest import REPO

CLI_CASES = [
    ("name: [unclosed\n", "invalid YAML"),
    ("mix: {budget: -5}\n", "mix.budget: must be at least 1, got -5"),
    (
        "evaluate: {judge: {prompt: paper-1to4}}\n",
        "unknown judge prompt 'paper-1to4'; did you mean 'paper-1to3'",
    ),
    ("evaluate: {judge: {backend: opnai}}\n", "unknown judge backend 'opnai'; did you mean 'openai'"),
    ("data: {languages: [en, xx]}\n", "unknown language 'xx'"),
    ("train: {methods: [lora], epochs: many}\n", "train.epochs: expected a number, got 'many'"),
    ("translate: {enabled: true, backend: deepl}\n", "unknown translation backend 'deepl'"),
    (
        "data: {source: /nonexistent/alpaca.json}\n",
        "data.source: no such file or folder '/nonexistent/alpaca.json'",
    ),
]


LIMIT_S, LIMIT_KB = 30, 1_500_000


QUICK = "configs/quick.yaml"


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]  # after `babeltune`; {tmp} is the case folder
    says: str = ""  # a refusal: what its one line holds; empty: accepted
    why: str = ""  # an acceptance: why it is right to accept
    env: tuple[tuple[str, str], ...] = ()


def refuse(name: str, *args: str, says: str, env: dict | None = None) -> Case:
    return Case(name, args, says=says, env=tuple((env or {}).items()))


def accept(name: str, *args: str, why: str) -> Case:
    """Accepted when the config loads and checks (``show-config``: no tokenizer to load, as ``plan`` does)."""
    if args[0] == "plan" and "--models" not in " ".join(args):  # grid-point names are checked by plan itself
        args = ("show-config", *args[1:])
    return Case(name, args, why=why)


def plan(*overrides: str) -> tuple[str, ...]:
    return ("plan", QUICK, "--output_dir={tmp}/run", *overrides)


def data(*overrides: str) -> tuple[str, ...]:
    """The data stage of an English-only grid (the quick config trains a Spanish monolingual run)."""
    return ("data", QUICK, "--output_dir={tmp}/run", "--mix.regimes=[english-only]", "--mix.monolingual_languages=null",
            "--data.languages=[en]", *overrides)  # fmt: skip


CASES = [
    # --- grid lists that would be empty
    refuse("no test languages", *plan("--test.languages=[]"), says="test.languages: give at least one"),
    refuse("no methods", *plan("--train.methods=[]"), says="train.methods: give at least one"),
    refuse("no regimes", *plan("--mix.regimes=[]"), says="mix.regimes: give at least one"),
    refuse("no models", *plan("--models=[]"), says="models: give at least one"),
    refuse("no data languages", *plan("--data.languages=[]"), says="data.languages: give at least one"),
    refuse(
        "duplicate data language", *plan("--data.languages=[en, es, es]"), says="data.languages: 'es' twice"
    ),
    refuse("duplicate test language", *plan("--test.languages=[en, en]"), says="test.languages: 'en' twice"),
    refuse(
        "duplicate regime",
        *plan("--mix.regimes=[english-only, english-only]"),
        says="mix.regimes: 'english-only' twice",
    ),
    refuse("duplicate method", *plan("--train.methods=[lora, lora]"), says="train.methods: 'lora' twice"),
    # --- mixtures
    refuse(
        "ratios all zero",
        *plan("--mix.regimes=[multilingual-downsampled:ratios]", "--mix.ratios={en: 0, es: 0, ru: 0}"),
        says="mix.ratios: the shares add up to 0",
    ),
    refuse(
        "negative ratio",
        *plan("--mix.regimes=[multilingual-downsampled:ratios]", "--mix.ratios={en: 1.5, es: -0.5, ru: 0}"),
        says="mix.ratios: es: -0.5 is negative",
    ),
    refuse(
        "ratio of an unknown language",
        *plan("--mix.regimes=[multilingual-downsampled:ratios]", "--mix.ratios={en: 1, xx: 0}"),
        says="mix.ratios: give a share for each language",
    ),
    refuse("huge temperature alpha", *plan("--mix.alpha=1e308"), says="mix.alpha"),
    refuse("negative alpha", *plan("--mix.alpha=-1"), says="mix.alpha"),
    refuse("zero budget", *plan("--mix.budget=0"), says="mix.budget"),
    refuse("share over 1", *plan("--mix.share={en: 1.5}"), says="mix.share"),
    refuse("unknown regime", *plan("--mix.regimes=[bilingual]"), says="unknown regime 'bilingual'"),
    refuse("unknown strategy", *plan("--mix.strategy=random"), says="unknown sampling strategy 'random'"),
    refuse(
        "monolingual language not in data",
        *plan("--mix.monolingual_languages=[de]"),
        says="mix.monolingual_languages",
    ),
    # --- training
    refuse(
        "unknown LoRA target module",
        *plan("--lora.target_modules=[no_such_module]"),
        says="lora.target_modules: no module 'no_such_module' in builtin:smollm2-135m",
    ),
    refuse(
        "unknown scheduler", *plan("--train.scheduler=bogus"), says="train.scheduler: 'bogus' is not one of"
    ),
    refuse("zero learning rate", *plan("--train.learning_rate=0"), says="train.learning_rate"),
    refuse("negative epochs", *plan("--train.epochs=-1"), says="train.epochs"),
    refuse("zero batch size", *plan("--train.batch_size=0"), says="train.batch_size"),
    refuse("negative grad accum", *plan("--train.grad_accum=-2"), says="train.grad_accum"),
    refuse("zero max length", *plan("--train.max_length=0"), says="train.max_length"),
    refuse("LoRA rank 0", *plan("--lora.r=0"), says="lora.r"),
    refuse("LoRA dropout 1.5", *plan("--lora.dropout=1.5"), says="lora.dropout"),
    refuse("unknown method", *plan("--train.methods=[dora2]"), says="unknown fine-tuning method 'dora2'"),
    refuse("warmup ratio 2", *plan("--train.warmup_ratio=2"), says="train.warmup_ratio"),
    refuse("negative val size", *plan("--train.val_size=-1"), says="train.val_size"),
    # --- decoding
    refuse(
        "tiny temperature",
        *plan("--generate.do_sample=true", "--generate.temperature=1e-9"),
        says="generate.temperature",
    ),
    refuse("negative temperature", *plan("--generate.temperature=-1"), says="generate.temperature"),
    refuse("top_p over 1", *plan("--generate.top_p=1.5"), says="generate.top_p"),
    refuse("zero new tokens", *plan("--generate.max_new_tokens=0"), says="generate.max_new_tokens"),
    refuse(
        "repetition penalty below 1",
        *plan("--generate.repetition_penalty=0.5"),
        says="generate.repetition_penalty",
    ),
    refuse("an empty stop string", *plan('--generate.stop=[""]'), says="generate.stop: an empty stop string"),
    refuse("zero beams", *plan("--generate.num_beams=0"), says="generate.num_beams"),
    refuse("unknown generate backend", *plan("--generate.backend=llamacpp"), says="generate.backend"),
    # --- evaluation
    refuse(
        "langid model is /etc/passwd",
        *plan("--evaluate.langid.model_path=/etc/passwd"),
        says="evaluate.langid.model_path: /etc/passwd is not a fastText model",
    ),
    refuse(
        "langid model is a folder",
        *plan("--evaluate.langid.model_path={tmp}"),
        says="is not a fastText model",
    ),
    refuse(
        "langid model is a FIFO",
        *plan("--evaluate.langid.model_path={tmp}/fifo"),
        says="is not a fastText model",
    ),
    refuse(
        "judge prompt with a wrong field",
        *plan("--evaluate.judge.prompt={tmp}/wrong_field.yaml"),
        says="wrong_field.yaml: unknown field 'nosuchfield'",
    ),
    refuse(
        "judge prompt with a bad scale",
        *plan("--evaluate.judge.prompt={tmp}/bad_scale.yaml"),
        says="bad_scale.yaml",
    ),
    refuse("judge prompt is sparse", *plan("--evaluate.judge.prompt={tmp}/sparse.yaml"), says="sparse.yaml"),
    refuse("judge prompt is /dev/zero", *plan("--evaluate.judge.prompt=/dev/zero"), says="/dev/zero"),
    refuse("judge prompt unknown", *plan("--evaluate.judge.prompt=nosuchjudge"), says="nosuchjudge"),
    refuse("unknown judge backend", *plan("--evaluate.judge.backend=magic"), says="evaluate.judge.backend"),
    # --- data and files
    refuse(
        "model folder that is not a model",
        *plan("--models=[{name: '{tmp}/notamodel'}]"),
        says="notamodel: not a model folder",
    ),
    refuse("model folder missing", *plan("--models=[{name: '{tmp}/nothere/x'}]"), says="nothere"),
    refuse(
        "hub data offline",
        *data("--data.source=hf:nobody/nothing"),
        says="hf:nobody/nothing",
        env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    ),
    refuse(
        "data source is a sparse JSON array", *data("--data.source={tmp}/sparse.json"), says="sparse.json"
    ),
    refuse("data source is /dev/zero", *data("--data.source=/dev/zero"), says="/dev/zero"),
    refuse("data source is a folder of nothing", *data("--data.source={tmp}/emptydir"), says="emptydir"),
    refuse(
        "a lone surrogate in a data field",
        *data("--data.source={tmp}/surrogate.jsonl"),
        says="surrogate.jsonl:1",
    ),
    refuse(
        "translate cache unwritable",
        *plan("--translate.enabled=true", "--translate.cache=/proc/nocache"),
        says="translate.cache",
    ),
    refuse("output dir is a file", "data", QUICK, "--output_dir=/etc/hostname", says="/etc/hostname"),
    # --- serve options
    refuse("serve port 99999", "serve", "builtin:smollm2-135m", "--port", "99999", says="--port"),
    refuse("serve port -5", "serve", "builtin:smollm2-135m", "--port=-5", says="--port"),
    refuse("serve max tokens 0", "serve", "builtin:smollm2-135m", "--max-tokens", "0", says="--max-tokens"),
    refuse(
        "serve max request bytes -5",
        "serve",
        "builtin:smollm2-135m",
        "--max-request-bytes=-5",
        says="--max-request-bytes",
    ),
    refuse("serve kv cache -1", "serve", "builtin:smollm2-135m", "--kv-cache-gb=-1", says="--kv-cache-gb"),
    refuse("serve a missing checkpoint", "serve", "{tmp}/nothere", says="nothere"),
    # --- Slurm scripts: never replace what is not a regular file
    refuse("slurm script into a folder", *plan("--slurm={tmp}"), says="is a folder"),
    refuse("slurm script onto a device", *plan(), says="not a regular file"),
    refuse("slurm script onto a FIFO", *plan(), says="not a regular file"),
    refuse("slurm script through a symlink", *plan(), says="not a regular file"),
    # --- human scores
    refuse("human scores from /dev/zero", "judge-agreement", "/dev/zero", "{tmp}/run", says="/dev/zero"),
    refuse("human scores sparse", "judge-agreement", "{tmp}/sparse.csv", "{tmp}/run", says="sparse.csv"),
    refuse("human scores a folder", "judge-agreement", "{tmp}", "{tmp}/run", says="is a folder"),
    refuse("human scores missing", "judge-agreement", "{tmp}/none.csv", "{tmp}/run", says="none.csv"),
    # --- YAML and CLI
    refuse("unknown top-level field", *plan("--tarin.epochs=1"), says="tarin"),
    refuse("unknown nested field", *plan("--train.epoch=1"), says="train.epoch"),
    refuse("wrong type", *plan("--train.epochs=many"), says="train.epochs"),
    refuse("a config that is a list", "plan", "{tmp}/list.yaml", says="list.yaml"),
    refuse("a config with a tab", "plan", "{tmp}/tab.yaml", says="tab.yaml"),
    refuse("a config that is a billion laughs", "plan", "{tmp}/laughs.yaml", says="laughs.yaml"),
    refuse("a config missing", "plan", "{tmp}/none.yaml", says="none.yaml"),
    refuse("a config that is /dev/zero", "plan", "/dev/zero", says="/dev/zero"),
    refuse("an override without a value", *plan("--train.epochs"), says="--train.epochs"),
    refuse("unknown language code", *plan("--data.languages=[en, xx]"), says="xx"),
    refuse("unknown test language code", *plan("--test.languages=[en, klingon]"), says="klingon"),
    refuse("sweep of an unknown setting", *plan("--sweep={train.nope: [1, 2]}"), says="sweep"),
    refuse("sweep with one value", *plan("--sweep={train.learning_rate: []}"), says="sweep"),
    refuse("negative seed list", *plan("--seeds=[-1]"), says="train.seed: must be at least 0"),
    refuse("duplicate seeds", *plan("--seeds=[1, 1]"), says="seeds: 1 twice"),
    refuse(
        "compare an unknown run",
        "compare",
        QUICK,
        "--output_dir={tmp}/run",
        "--runs",
        "a",
        "b",
        says="unknown run 'a'",
    ),
    refuse("run an unknown task id", "run", QUICK, "--output_dir={tmp}/run", "--task", "999", says="--task"),
    refuse("status of a missing folder", "status", "{tmp}/nothere", says="nothere"),
    refuse("run-task of a non-task folder", "run-task", "{tmp}", says="not a task folder"),
    refuse("zero generate batch", *plan("--generate.batch_size=0"), says="generate.batch_size"),
    refuse(
        "zero judged per language",
        *plan("--evaluate.judge.max_per_language=0"),
        says="evaluate.judge.max_per_language",
    ),
    refuse("zero test prompts", *plan("--test.max_prompts=0"), says="test.max_prompts"),
    refuse(
        "zero examples per language",
        *plan("--data.max_examples_per_language=0"),
        says="data.max_examples_per_language",
    ),
    refuse("zero processes", *plan("--train.nproc=0"), says="train.nproc"),
    refuse("unknown contrasts", *plan("--report.contrasts=some"), says="report.contrasts"),
    refuse(
        "hub model offline",
        "train",
        *data("--models=[{name: nobody/nomodel}]")[1:],
        says="model 'nobody/nomodel' is not a local folder, not in the hub cache",
        env={"HF_HUB_OFFLINE": "1"},
    ),
    refuse(
        "data file not UTF-8",
        *data("--data.source={tmp}/latin1.jsonl"),
        says="latin1.jsonl:1: not valid UTF-8",
    ),
    refuse(
        "data line that is a list", *data("--data.source={tmp}/listline.jsonl"), says="expected an object"
    ),
    refuse(
        "test file with a lone surrogate",
        *data("--test.source={tmp}/tests", "--test.languages=[en]"),
        says="a lone surrogate",
    ),
    refuse("output dir under /proc", *data("--output_dir=/proc/babeltune-run"), says="/proc/babeltune-run"),
    # --- accepted on purpose
    accept(
        "an unseen test language",
        *plan("--test.languages=[en, bn]"),
        why="testing on languages the model was not tuned on is the paper's question",
    ),
    accept(
        "one model twice with labels",
        *plan("--models=[{name: builtin:smollm2-135m, label: a}, {name: builtin:smollm2-135m, label: b}]"),
        why="two labels tell the grid points apart (a seed or dtype study)",
    ),
    accept("repetition penalty 1", *plan("--generate.repetition_penalty=1.0"), why="1.0 is no penalty"),
    accept(
        "a stop string of spaces",
        *plan('--generate.stop=["  "]'),
        why="whitespace can end an answer on purpose",
    ),
    accept(
        "ratios that add up to 1",
        *plan(
            "--mix.regimes=[multilingual-downsampled:ratios]", "--mix.ratios={en: 0.5, es: 0.25, ru: 0.25}"
        ),
        why="a valid mixture",
    ),
    accept(
        "sampling at temperature 0.7",
        *plan("--generate.do_sample=true", "--generate.temperature=0.7"),
        why="a usual sampling setting",
    ),
]


def _files(tmp: Path) -> None:
    """What the cases read: sparse files, a FIFO, a device node, broken judge prompts, a non-model folder."""
    for name in ("sparse.yaml", "sparse.json", "sparse.csv"):
        with open(tmp / name, "wb") as fh:
            fh.truncate(8 << 30)  # 8 GiB of holes: no disk used
    (tmp / "emptydir").mkdir()
    (tmp / "notamodel").mkdir()
    (tmp / "notamodel" / "readme.txt").write_text("not weights")
    (tmp / "wrong_field.yaml").write_text(
        "system: s\nuser: '{question} {answer}'\nparser: rating\nnosuchfield: 1\n"
    )
    (tmp / "bad_scale.yaml").write_text("system: s\nuser: '{question} {answer}'\nscale: [3, 1]\n")
    (tmp / "surrogate.jsonl").write_text('{"instruction": "a \\ud800 b", "input": "", "output": "fine"}\n')
    (tmp / "list.yaml").write_text("- a\n- b\n")
    (tmp / "latin1.jsonl").write_bytes(
        '{"instruction": "caf\u00e9", "input": "", "output": "ok"}\n'.encode("latin-1")
    )
    (tmp / "listline.jsonl").write_text('["instruction", "output"]\n')
    (tmp / "tests").mkdir()
    (tmp / "tests" / "test_en.jsonl").write_text('{"id": "1", "prompt": "x \\udfff y"}\n')
    (tmp / "tab.yaml").write_text("name: x\n\tdata: 1\n")
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )
    (tmp / "laughs.yaml").write_text(laughs)
    os.mknod(tmp / "full", stat.S_IFCHR | 0o666, os.makedev(1, 7))  # a /dev/full of our own
    os.mkfifo(tmp / "fifo")
    (tmp / "target.sh").write_text("keep me\n")
    (tmp / "link.sh").symlink_to(tmp / "target.sh")


SLURM_TARGETS = {"slurm script onto a device": "full", "slurm script onto a FIFO": "fifo",
                 "slurm script through a symlink": "link.sh"}  # fmt: skip


# Runs the command and leaves its peak memory (KB) in a file: the child's rusage, read where it was reaped.
MEASURE = (
    "import resource, subprocess, sys; rc = subprocess.run(sys.argv[2:]).returncode; "
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(rc)"
)


def _run(case: Case, root: Path) -> dict:
    tmp = root / case.name.replace(" ", "_").replace("/", "_")
    tmp.mkdir()
    _files(tmp)
    args = [a.replace("{tmp}", str(tmp)) for a in case.args]
    if case.name in SLURM_TARGETS:
        args.append(f"--slurm={tmp / SLURM_TARGETS[case.name]}")
    peak = root / f"{tmp.name}.peak"
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", MEASURE, str(peak), sys.executable, "-m", "babeltune", *args],
                            cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1", **dict(case.env)))  # fmt: skip
    try:
        out, err = proc.communicate(timeout=LIMIT_S)
        killed = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        killed = True
    seconds = time.perf_counter() - start
    return {"case": case, "rc": proc.returncode, "stdout": out, "stderr": err, "seconds": seconds, "killed": killed,
            "peak_kb": int(peak.read_text()) if peak.exists() else None}  # fmt: skip


def _problem(r: dict) -> str | None:
    case, err = r["case"], r["stderr"]
    if r["killed"]:
        return f"ran over {LIMIT_S} s"
    if r["peak_kb"] and r["peak_kb"] > LIMIT_KB:
        return f"grew to {r['peak_kb'] // 1024} MB"
    if "Traceback" in err:
        return "traceback: " + err.strip().splitlines()[-1][:200]
    if case.says:
        lines = [line for line in err.splitlines() if line.startswith("babeltune: error: ")]
        if r["rc"] != 2 or len(lines) != 1:
            return f"exit {r['rc']}, {len(lines)} error lines: {err.strip()[-300:]}"
        said = err[err.index(lines[0]) :]  # the line, and a listing of bad records under it
        if case.says not in said:
            return f"says {said[:300]!r}, not {case.says!r}"
    elif r["rc"] != 0:
        return f"accepted case exited {r['rc']}: {err.strip()[-300:]}"
    return None


@pytest.mark.parametrize(("yaml_text", "message"), CLI_CASES)
def test_cli_bad_input_is_one_line_exit_2_no_traceback(tmp_path, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text("# babeltune run bad.yaml\n" + yaml_text)
    proc = subprocess.run([sys.executable, "-m", "babeltune", "translate" if "translate" in yaml_text else "data",
                           str(path), f"--output_dir={tmp_path / 'run'}"], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("babeltune: error: ") and message in lines[0], proc.stderr
    debug = subprocess.run(
        [sys.executable, "-m", "babeltune", "--debug", "data", str(path)], capture_output=True, text=True
    )
    assert "Traceback" in debug.stderr or debug.returncode == 0


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "exp.yaml"
    bad.write_text("# babeltune run exp.yaml\nmix:\n  regimes: [monolingal]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "babeltune", "plan", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        f"babeltune: error: {bad}: mix.regimes[0]: unknown regime 'monolingal'; did you mean 'monolingual', 'multilingual'? "
        "choices: english-only, monolingual, multilingual, multilingual-downsampled"
    )


def test_hostile_inputs_are_refused_in_one_line(tmp_path):
    assert len(CASES) >= 100, len(CASES)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda c: _run(c, tmp_path), CASES))
    problems = {r["case"].name: p for r in results if (p := _problem(r))}
    for name, target in SLURM_TARGETS.items():  # the refused write left what was there
        tmp = tmp_path / name.replace(" ", "_")
        kept = {"full": stat.S_ISCHR, "fifo": stat.S_ISFIFO, "link.sh": stat.S_ISLNK}[target]
        if not kept(os.lstat(tmp / target).st_mode) or (tmp / "target.sh").read_text() != "keep me\n":
            problems[name] = "replaced what the path named"
    refusals = [r["seconds"] for r in results if r["case"].says]
    summary = {"cases": len(CASES), "clear refusals": sum(1 for r in results if r["case"].says) - len(problems),
               "accepted on purpose": {c.name: c.why for c in CASES if not c.says},
               "problems": problems, "refusal seconds median": round(median(refusals), 2),
               "refusal seconds max": round(max(refusals), 2),
               "peak MB max": max(r["peak_kb"] or 0 for r in results) // 1024}  # fmt: skip
    (tmp_path / "fuzz_summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    assert not problems, json.dumps(problems, indent=2)
