"""`babeltune run` in real processes: reruns retry exactly what failed, a changed setting redoes exactly what
depends on it, many processes share one run directory, keys never leak, signals and full disks say what
was kept, every task folder reruns alone."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import zlib

import pytest

from babeltune.data import loaders
from babeltune.io import read_json, read_jsonl, write_jsonl
from conftest import REPO, babeltune, tiny_config
from helpers.cli import last_message, one_line_error, tmpfs

KEY = "sk-LEAKY-0123456789abcdef"


def _results(run_dir):
    """Each run's answers and scores, by run name (folders are named by keys, so they may differ)."""
    out = {}
    for stage, file in (("generate", "responses.jsonl"), ("evaluate", "scores.jsonl")):
        for path in (run_dir / stage).glob(f"*/{file}"):
            rows = read_jsonl(path)
            out[stage, rows[0]["run"]] = sorted(json.dumps(r, sort_keys=True) for r in rows)
    return out


def _mode(path) -> str:
    return stat.filemode(path.stat().st_mode)


def _todo(cfg: str, *overrides: str) -> set[tuple[str, str]]:
    proc = babeltune("plan", cfg, "--json", *overrides)
    assert proc.returncode == 0, proc.stderr
    return {(r["stage"], r["name"]) for r in map(json.loads, proc.stdout.splitlines()) if r["todo"]}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_model, tiny_marian):
    """A finished run with translation (a tiny Marian model), LoRA training and a local judge."""
    root = tmp_path_factory.mktemp("finished")
    translate = (f'{{enabled: true, backend: hf, model: "{tiny_marian}", max_length: 8, check_language: false, '
                 "min_length_ratio: 0.0, max_length_ratio: 100.0}")  # fmt: skip
    cfg = str(tiny_config(root / "exp.yaml", tiny_model, root / "run", translate=translate))
    done = babeltune("run", cfg)
    assert done.returncode == 0, done.stderr
    shutil.copytree(tiny_model, root / "other-judge")
    return cfg, root


def _chains(names, method=None) -> set[tuple[str, str]]:
    return {
        (s, n)
        for n in names
        if method is None or f"/{method}/" in n
        for s in ("train", "generate", "evaluate")
    }


def _test_files(folder, ids_by_lang, bom=False):
    folder.mkdir()
    for lang, ids in ids_by_lang.items():
        text = "".join(
            json.dumps({"id": i, "prompt": f"Question {i} in {lang}, please answer it."}) + "\n" for i in ids
        )
        (folder / f"test_{lang}.jsonl").write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
    return folder


def test_a_resumed_generation_keeps_the_engine_and_precision_its_first_answers_had(tmp_path, tiny_model):
    """Issue 23: ``auto`` is decided once per task. A task resumed on another machine (here: its first answer
    made where bf16 is fast, the rest answered on this CPU, where auto means fp32) keeps the precision its
    answers were made at; answers that already disagree are refused in one line, not merged."""
    from conftest import babeltune, tiny_config

    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", mix="{regimes: [english-only]}",
                      evaluate="{judge: {enabled: false}}")  # fmt: skip
    first = babeltune("run", str(cfg))
    assert first.returncode == 0, first.stderr[-2000:]
    (folder,) = (tmp_path / "run" / "generate").iterdir()
    rows = read_jsonl(folder / "responses.jsonl")
    assert len(rows) == 6 and {(r["decoding"]["backend"], r["decoding"]["precision"]) for r in rows} == {
        ("hf", "fp32")
    }
    rows[0]["decoding"]["precision"] = "bf16"  # as if made on a machine fast at bf16, then stopped
    write_jsonl(folder / "responses.jsonl", rows[:1])
    (folder / ".done.json").unlink()
    resumed = babeltune("run", str(cfg))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert [r["decoding"]["precision"] for r in read_jsonl(folder / "responses.jsonl")] == ["bf16"] * 6

    rows = read_jsonl(folder / "responses.jsonl")
    rows[1]["decoding"]["precision"] = "fp32"
    write_jsonl(folder / "responses.jsonl", rows[:2])
    (folder / ".done.json").unlink()
    refused = babeltune("run", str(cfg))
    assert refused.returncode == 2
    assert (
        refused.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "were made by different engines (responses.jsonl: hf at bf16; responses.jsonl: hf at fp32), as "
            "generate.backend or generate.precision said auto on different machines; set both and delete the "
            "files that disagree"
        )
    )
    assert len(read_jsonl(folder / "responses.jsonl")) == 2  # nothing lost


def test_an_echoed_key_never_reaches_a_file_or_the_console(tmp_path, tiny_model, chat_server):
    """A gateway that answers 401 with the key in its body: the stage stops at once with one line naming
    the variable; a 500 that echoes the key leaves [redacted] in the records, never the key."""

    def refuse(body, attempt):
        return ("error", 401, f"Incorrect API key provided: {KEY}. You can find your key at ...")

    server = chat_server(refuse)
    translate = (f'{{enabled: true, backend: openai, model: mt, base_url: "{server.url}", api_key_env: BT_KEY, '
                 "concurrency: 2, check_language: false}")  # fmt: skip
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", translate=translate)
    proc = babeltune("run", str(cfg), env={"BT_KEY": KEY})
    line = one_line_error(proc)
    assert (
        line
        == f"babeltune: error: translate: {server.url} refused the key in $BT_KEY (401); nothing more was sent"
    )
    assert server.calls <= 2  # the calls already in flight, then nothing (no retries, no other items)

    def echo(body, attempt):
        text = body["messages"][-1]["content"]
        return ("error", 500, f"upstream failed for key {KEY}") if "[Question]" in text else text.upper()

    server.reply = echo
    evaluate = (f'{{judge: {{backend: openai, model: j, base_url: "{server.url}", api_key_env: BT_KEY, '
                "max_retries: 0}}")  # fmt: skip
    cfg = tiny_config(
        tmp_path / "exp.yaml", tiny_model, tmp_path / "run", translate=translate, evaluate=evaluate
    )
    proc = babeltune("run", str(cfg), env={"BT_KEY": KEY})
    assert proc.returncode == 3, proc.stderr[-2000:]
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    errors = [
        json.loads(line)["judge_error"]
        for p in files
        if p.name == "scores.jsonl"
        for line in p.read_text().splitlines()
    ]
    assert errors and all("[redacted]" in e for e in errors)
    assert [str(p) for p in files if KEY.encode() in p.read_bytes()] == []
    assert KEY not in proc.stdout + proc.stderr


def test_a_dead_endpoint_stops_the_stage_at_once(tmp_path, tiny_model):
    evaluate = '{judge: {backend: openai, model: j, base_url: "http://127.0.0.1:9/v1", api_key_env: null}}'
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", evaluate=evaluate)
    start = time.perf_counter()
    line = one_line_error(babeltune("run", str(cfg)))
    assert "evaluate.judge: cannot reach http://127.0.0.1:9/v1 (APIConnectionError)" in line
    assert time.perf_counter() - start < 60  # retried once per item with backoff, it would take minutes


@pytest.mark.parametrize(
    ("sig", "status", "how"), [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")]
)
def test_ctrl_c_and_sigterm_say_what_was_kept(tmp_path, tiny_model, sig, status, how):
    cfg = tiny_config(
        tmp_path / "exp.yaml",
        tiny_model,
        tmp_path / "run",
        train="{epochs: 400, batch_size: 1, grad_accum: 1}",
    )
    # as from a terminal: a shell's background job (CI started with `&`) would pass SIGINT on ignored
    proc = subprocess.Popen([sys.executable, "-m", "babeltune", "run", str(cfg)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    for line in proc.stdout:
        if "] train: " in line:
            break
    time.sleep(3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err[-2000:]
    assert "Traceback" not in err
    assert (
        f"babeltune: stopped by {how}; finished tasks" in err
        and "run the same command again to resume" in err
    )
    assert len(list((tmp_path / "run" / "data").iterdir())) == 1


def test_no_piece_of_an_echoed_key_reaches_a_file_or_the_console(tmp_path, tiny_model, chat_server):
    """Issue 28, item 4: a gateway echoes the key (plain, hex or base64) at offsets around where error texts
    are cut: no 8-character piece of any form of it is written or printed, and words that are not keys (the
    name HF_HUB_OFFLINE) are left alone."""
    import base64
    import itertools

    key = "Zq9LmW3xTt7Rv2YpQa5sXc8V"
    forms = [key, key.encode().hex(), base64.b64encode(key.encode()).decode()]
    echoes = itertools.cycle((offset, form) for offset in range(110, 200, 4) for form in forms)

    def echo(body, attempt):
        offset, form = next(echoes)
        return ("error", 500, "HF_HUB_OFFLINE " + "e" * offset + form + " trailing text")

    server = chat_server(echo)
    evaluate = (f'{{judge: {{backend: openai, model: j, base_url: "{server.url}", api_key_env: BT_KEY, '
                "max_retries: 0}}")  # fmt: skip
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", evaluate=evaluate,
                      test='{languages: [en, es, "no"], max_prompts: 6}')  # fmt: skip
    proc = babeltune("run", str(cfg), env={"BT_KEY": key})
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert server.calls >= 30  # the key starts 165..255 characters in: across the 200-character cut
    pieces = {f[i : i + 8] for f in forms for i in range(len(f) - 7)}
    written = [(p, p.read_text(errors="replace")) for p in (tmp_path / "run").rglob("*") if p.is_file()]
    written.append(("console", proc.stdout + proc.stderr))
    leaks = sorted({(str(name), piece) for name, text in written for piece in pieces if piece in text})
    assert leaks == []
    errors = [json.loads(line)["judge_error"] for p, text in written if str(p).endswith("scores.jsonl")
              for line in text.splitlines() if json.loads(line)["judge_error"]]  # fmt: skip
    assert errors and all("HF_HUB_OFFLINE" in e for e in errors) and any("[redacted]" in e for e in errors)


@pytest.mark.parametrize("free_kb", [40, 2500])
def test_a_disk_that_fills_at_any_stage_gives_one_line_and_keeps_what_was_done(tmp_path, tiny_model, free_kb):
    """Issue 28, item 6: a tmpfs left with little room, so the disk fills in a different stage at each level
    (data, mixtures, checkpoints, caches, the report): the run ends well or with the one line, never with a
    traceback; a rerun with room finishes from what was kept."""
    with tmpfs(tmp_path / "room", "6M") as room:
        ballast = room / "ballast"
        ballast.write_bytes(b"\0" * (6 * 1024 * 1024 - free_kb * 1024 - 64 * 1024))
        cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, room / "run", mix="{regimes: [english-only]}",
                          test="{languages: [en, es], max_prompts: 2}",
                          evaluate="{judge: {enabled: false}}")  # fmt: skip
        proc = babeltune("run", str(cfg), env={"BABELTUNE_CACHE": str(tmp_path / "models")})
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
        if proc.returncode:
            last = proc.stderr.strip().splitlines()[-1]
            assert proc.returncode == 2 and last.startswith("babeltune: error: "), proc.stderr[-2000:]
            assert last.endswith(
                "no space left on the device; finished tasks are kept, rerun when there is room"
            )
        ballast.unlink()
        again = babeltune("run", str(cfg), env={"BABELTUNE_CACHE": str(tmp_path / "models")})
        assert again.returncode == 0, again.stderr[-2000:]


def test_failed_judgements_are_retried_by_the_next_run_and_nothing_else(tmp_path, tiny_model, chat_server):
    healthy, refused = [False], set()

    def judge(body, attempt):
        if not healthy[0] and zlib.crc32(last_message(body).encode()) % 2 == 0:
            refused.add(last_message(body))
            return 503
        return "Fine. Rating: [[2]]"

    server = chat_server(judge)
    evaluate = f'{{judge: {{backend: openai, model: j, base_url: "{server.url}", api_key_env: null, max_retries: 0}}}}'
    cfg = str(tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", evaluate=evaluate))

    first = babeltune("run", cfg)
    assert first.returncode == 3, first.stderr
    scores = [r for p in (tmp_path / "run" / "evaluate").glob("*/scores.jsonl") for r in read_jsonl(p)]
    assert refused and sum(r["judge_error"] is not None for r in scores) >= len(refused)
    (report,) = (tmp_path / "run" / "report").iterdir()  # made on incomplete scores: says so, not complete
    assert "Incomplete scores: " in (report / "report.html").read_text()
    assert read_json(report / ".done.json")["complete"] is False

    healthy[0] = True
    calls = server.calls
    second = babeltune("run", cfg)
    assert second.returncode == 0, second.stderr
    assert server.calls - calls == len(refused)  # only the judgements that failed are asked again
    assert "] evaluate:" in second.stdout and "] report:" in second.stdout  # the report follows the scores
    assert "] train:" not in second.stdout and "] generate:" not in second.stdout
    scores = [r for p in (tmp_path / "run" / "evaluate").glob("*/scores.jsonl") for r in read_jsonl(p)]
    assert all(r["judge_error"] is None for r in scores)
    report = max((tmp_path / "run" / "report").iterdir(), key=lambda p: (p / ".done.json").stat().st_mtime)
    assert (
        read_json(report / ".done.json")["complete"]
        and "Incomplete scores" not in (report / "report.html").read_text()
    )

    calls = server.calls
    third = babeltune("run", cfg)
    assert (
        third.returncode == 0
        and server.calls == calls
        and "10 of 10 tasks already done; running 0" in third.stdout
    )


def test_three_array_tasks_at_once_on_one_run_directory(tmp_path, tiny_model):
    mix = "{regimes: [english-only, multilingual-downsampled, monolingual], monolingual_languages: [es]}"
    shared = tiny_config(tmp_path / "shared.yaml", tiny_model, tmp_path / "shared", mix=mix)
    alone = tiny_config(tmp_path / "alone.yaml", tiny_model, tmp_path / "alone", mix=mix)

    start = time.perf_counter()
    sequential = babeltune("run", str(alone), preexec_fn=lambda: os.umask(0o022))
    sequential_seconds = time.perf_counter() - start
    assert sequential.returncode == 0, sequential.stderr

    start = time.perf_counter()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "babeltune", "run", str(shared), "--task"]
    procs = [subprocess.Popen([*cmd, str(i)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(3)]  # fmt: skip
    outputs = [p.communicate(timeout=600) for p in procs]
    concurrent_seconds = time.perf_counter() - start
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    print(
        f"3 concurrent --task processes: {concurrent_seconds:.1f} s; sequential run: {sequential_seconds:.1f} s"
    )

    for stage in ("data", "tests", "mix"):  # each shared task was made once, by whichever came first
        assert len(list((tmp_path / "shared" / stage).iterdir())) == 1
    assert not (tmp_path / "shared" / "report").exists()
    report = babeltune("report", str(shared))
    assert report.returncode == 0 and "already done; running 1" in report.stdout
    assert _results(tmp_path / "shared") == _results(tmp_path / "alone")
    (folder,) = (tmp_path / "shared" / "report").iterdir()
    runs = {row.split(",")[0] for row in (folder / "summary.csv").read_text().splitlines()[1:]}
    assert {run.rsplit("/", 1)[1] for run in runs} == {"en-only", "multi-down", "mono-es"} and len(runs) == 3

    # Under umask 022 every result is readable by colleagues: files 0644, folders 0755.
    alone_dir = tmp_path / "alone"
    files = [*alone_dir.glob("report/*/*.html"), *alone_dir.glob("report/*/*.csv"), *alone_dir.glob("data/*/*.jsonl"),
             *alone_dir.glob("train/*/adapter/*.safetensors"), *alone_dir.glob("*/*/.done.json")]  # fmt: skip
    assert len(files) > 10 and {_mode(p) for p in files} == {"-rw-r--r--"}
    assert {_mode(p) for p in alone_dir.rglob("*") if p.is_dir()} == {"drwxr-xr-x"}


def test_a_changed_setting_redoes_exactly_what_depends_on_it(finished):
    cfg, root = finished
    lora = {n for s, n in _todo(cfg, "--mix.seed=1") if s == "train"}
    full = {n.replace("/lora/", "/full/") for n in lora}
    report = {("report", "report")}
    evaluate = {("evaluate", n) for n in lora} | report
    answers = {("generate", n) for n in lora} | evaluate
    everything = _chains(lora) | report
    table = [
        ("--evaluate.judge.price_per_million_input=1.0", set()),
        ("--evaluate.judge.concurrency=2", set()),
        ("--evaluate.judge.timeout=5", set()),
        (f"--evaluate.judge.model={root / 'other-judge'}", evaluate),
        ("--evaluate.judge.prompt=mtbench-1to10", evaluate),
        ("--evaluate.judge.max_per_language=2", evaluate),
        ("--evaluate.langid.backend=py3langid", evaluate),
        ("--train.methods=[lora, full]", _chains(full) | report),
        ("--lora.r=4", everything),
        ("--train.full_learning_rate=1.0e-4", set()),  # no full-parameter run in this grid
        ("--train.learning_rate=2e-2", everything),
        ("--train.threads=1", set()),
        ("--train.gradient_checkpointing=true", set()),
        ("--train.report_to=[tensorboard]", set()),
        ("--test.max_prompts=1", {("data", "test prompts")} | answers),
        ("--generate.max_new_tokens=5", answers),
        ("--generate.batch_size=2", set()),
        ("--report.title=another", report),
        ("--translate.concurrency=2", set()),
        ("--translate.batch_size=2", set()),
        ("--translate.min_length_ratio=0.1", {("translate", "en -> es"), ("mix", "mixtures")} | everything),
        ("--mix.seed=1", {("mix", "mixtures")} | everything),
        ("--data.size_hint=100", set()),
        ("--name=renamed", set()),
    ]
    wrong = {change: (got, want) for change, want in table if (got := _todo(cfg, change)) != want}
    assert not wrong, wrong

    # With full-parameter runs in the grid, each method's own settings redo only that method's runs.
    assert babeltune("run", cfg, "--train.methods=[lora, full]").returncode == 0
    both = "--train.methods=[lora, full]"
    assert _todo(cfg, both, "--train.full_learning_rate=1.0e-4") == _chains(full) | report
    assert _todo(cfg, both, "--lora.r=4") == _chains(lora) | report

    # A new regime remakes the (cheap) mix task; the mixtures that came out the same keep their runs.
    regimes = [
        "--mix.regimes=[english-only, multilingual-downsampled, monolingual]",
        "--mix.monolingual_languages=[es]",
    ]
    grown = babeltune("run", cfg, *regimes)
    assert grown.returncode == 0, grown.stderr
    trained = [line.split("train: ")[1] for line in grown.stdout.splitlines() if "] train: " in line]
    assert trained == [next(iter(lora)).rsplit("/", 1)[0] + "/mono-es"]


def test_four_processes_on_one_run_directory_buy_each_judgement_once(tmp_path, tiny_model, chat_server):
    """Issue 28, item 3: two labels of one model train alike and answer alike, so four `--task` processes
    judge the same items at the same moment: each is bought once (claimed per item), as by one process."""

    def judge(body, attempt):
        time.sleep(0.2)  # slow enough that the processes overlap
        return "Fine. Rating: [[2]]"

    server = chat_server(judge)
    groups = {
        "models": f'[{{name: "{tiny_model}", label: a}}, {{name: "{tiny_model}", label: b}}]',
        "evaluate": f'{{judge: {{backend: openai, model: j, base_url: "{server.url}", api_key_env: null}}}}',
        "test": "{languages: [en, es], max_prompts: 4}",
    }
    alone = tiny_config(tmp_path / "alone.yaml", tiny_model, tmp_path / "alone", **groups)
    shared = tiny_config(tmp_path / "shared.yaml", tiny_model, tmp_path / "shared", **groups)
    assert babeltune("run", str(alone)).returncode == 0
    sequential = server.calls
    judged = sum(r["judge_score"] is not None for p in (tmp_path / "alone").glob("evaluate/*/scores.jsonl")
                 for r in read_jsonl(p))  # fmt: skip
    assert 0 < sequential < judged  # answers repeat across runs: one process bought each once

    assert babeltune("generate", str(shared)).returncode == 0  # the answers first: the processes only judge
    before = server.calls
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "babeltune", "run", str(shared), "--task"]
    procs = [subprocess.Popen([*cmd, str(i)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(4)]  # fmt: skip
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-2000:] for _, err in outputs]
    print(f"judge calls: 4 concurrent processes {server.calls - before}, one process {sequential}")
    assert server.calls - before == sequential
    assert {k: v for k, v in _results(tmp_path / "shared").items() if k[0] == "evaluate"} == {
        k: v for k, v in _results(tmp_path / "alone").items() if k[0] == "evaluate"
    }
    assert not list((tmp_path / "shared" / "cache").rglob("*.claim"))  # every claim released


def test_every_task_folder_reruns_alone_to_the_same_outputs(tmp_path, tiny_model):
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", translate="{enabled: false}")
    assert babeltune("run", str(cfg)).returncode == 0
    folders = sorted(p.parent for p in (tmp_path / "run").glob("*/*/job.yaml"))
    stages = {read_json(f / ".done.json")["stage"] for f in folders}
    assert stages == {"data", "mix", "train", "generate", "evaluate", "report"}
    for folder in folders:
        if folder.parent.name == "report":
            continue  # the report's page records when it was made
        before = read_json(folder / ".done.json")["outputs"]
        again = babeltune("run-task", str(folder), "--force")
        assert again.returncode == 0, again.stderr
        assert "done" in again.stdout
        assert read_json(folder / ".done.json")["outputs"] == before, folder


def test_translation_filters_through_the_command(tmp_path, tiny_model, chat_server):
    """Issue 26, item 4: a code-only answer is copied, not 'untranslated'; template text and an announced
    translation are rejected with their own reasons; a language under the acceptance floor is a warning on
    the console and in the report; none accepted is one line naming rejected.jsonl."""
    from html import escape

    from conftest import babeltune, tiny_config

    items = [
        ("Print hello in Python.", "```python\nprint('hello')\n```"),
        ("Name a large river in Africa.", "The Nile is a large river in Africa."),
        ("Name a colour of the clear sky.", "The clear sky is blue during the day."),
        ("Name a fruit that is yellow.", "A banana is a yellow fruit."),
        ("Name an animal that can fly.", "A sparrow is an animal that can fly."),
        ("Name a season of the year.", "Winter is a cold season of the year."),
    ]
    alpaca = tmp_path / "alpaca.json"
    alpaca.write_text(json.dumps([{"instruction": i, "input": "", "output": o} for i, o in items]))

    def mt(body, attempt):
        text = body["messages"][-1]["content"].partition("\n\n")[2]
        if "river" in text:
            return "Here is the translation:\n[es] " + text
        return f"[es] {text}\n### Explanation:\nI kept the meaning." if "sky" in text else f"[es] {text}"

    server = chat_server(mt)
    translate = (f'{{enabled: true, backend: openai, model: mt, base_url: "{server.url}", api_key_env: null, '
                 "check_language: false, min_acceptance: 0.8}")  # fmt: skip
    data = f'{{source: "{alpaca}", source_language: en, languages: [en, es]}}'
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", translate=translate, data=data,
                      evaluate="{judge: {enabled: false}}")  # fmt: skip
    proc = babeltune("run", str(cfg))
    assert proc.returncode == 0, proc.stderr[-2000:]
    (folder,) = (tmp_path / "run" / "translate").iterdir()
    reasons = {r["instruction"]: r["reasons"] for r in read_jsonl(folder / "rejected.jsonl")}
    assert reasons == {"Here is the translation:\n[es] Name a large river in Africa.": ["preamble"],
                       "[es] Name a colour of the clear sky.\n### Explanation:\nI kept the meaning.": ["template-leak"]}  # fmt: skip
    spanish = json.loads((folder / "alpaca_es.json").read_text())
    assert {"instruction": "[es] Print hello in Python.", "input": "",
            "output": "```python\nprint('hello')\n```"} in spanish and len(spanish) == 4  # fmt: skip
    timing = read_json(folder / "translate_report.json")["languages"]["es"]
    assert "seconds" not in timing and timing["seconds_translating"] > 0 and timing["seconds_checking"] >= 0
    warning = "translate en -> es: 4 of 6 items accepted (67%, under translate.min_acceptance 80%)"
    assert f"warning: {warning}; top reasons: preamble 1, template-leak 1" in proc.stderr
    (report,) = (tmp_path / "run" / "report").glob("*/report.html")
    page = report.read_text()
    assert escape(f"Machine translation: {warning}") in page
    # No judge ran: its columns and figures are left out with one line, not shown as dashes (item 6).
    assert "<p class='left-out'>Left out: judged, unparsable, ok, unjudged, score sum (judge x ok), mean score, " \
           "over, 95% CI, mean judge before the check, robustness (before - after), as the LLM judge was disabled " \
           "or judged no answer.</p>" in page  # fmt: skip
    assert "<th>mean score</th>" not in page and "mean score</th>" not in page.partition("id='finding'")[2]
    assert not (report.parent / "score.png").exists() and (report.parent / "consistency.png").exists()

    server.reply = lambda body, attempt: (
        "### Instruction:\n" + body["messages"][-1]["content"].partition("\n\n")[2]
    )
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run2", translate=translate, data=data)
    refused = babeltune("translate", str(cfg))
    assert refused.returncode == 2
    run2 = tmp_path / "run2" / "translate"
    assert refused.stderr.strip().splitlines()[-1] == (
        "babeltune: error: translate en -> es: none of 6 translations passed the filters (template-leak 6); "
        f"the rejected ones and their reasons are in {next(run2.iterdir()) / 'rejected.jsonl'}"
    )


def test_the_embedded_model_translates_offline_through_the_command(tmp_path, tiny_model):
    """Issue 24: the causal backend makes machine translations with the embedded model, no network: each is
    measured against the human-written version, the report gives that chrF beside the outcome, and another
    run on the same cache asks the model nothing."""
    from conftest import babeltune, tiny_config

    translate = ("{enabled: true, backend: causal, model: 'builtin:smollm2-135m', max_length: 16, batch_size: 8,"
                 f" check_language: false, min_length_ratio: 0.0, cache: {tmp_path / 'cache'}}}")  # fmt: skip
    data = "{languages: [en, es], max_examples_per_language: 3}"
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", translate=translate, data=data,
                      evaluate="{judge: {enabled: false}}")  # fmt: skip
    proc = babeltune("run", str(cfg), env={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    (folder,) = (tmp_path / "run" / "translate").iterdir()
    report = read_json(folder / "translate_report.json")
    es = report["languages"]["es"]
    assert report["backend"] == "causal" and es["items"] == 3 and es["translated_now"] == es["segments"] >= 6
    assert report["usage"]["calls"] == 1 and report["usage"]["output_tokens"] > 0  # one batch of 8
    english = {e.source_id: e for e in loaders.builtin_examples(["en"])}
    translated = [e for e in read_jsonl(folder / "examples.jsonl") if e["lang"] == "es"]
    translated += read_jsonl(folder / "rejected.jsonl")
    assert len(translated) == 3
    for row in translated:  # a new text in each field, not the English copied
        assert row["instruction"] and row["instruction"] != english[row["source_id"]].instruction
    chrf = read_json(folder / "mt_quality.json")["es"]["chrF"]
    assert 0 < chrf < 100
    (report_dir,) = (tmp_path / "run" / "report").iterdir()
    rows = list(csv.DictReader((report_dir / "summary.csv").open()))
    assert {(r["lang"], r["mt_chrf"]) for r in rows if r["run"].endswith("multi-down")} == {
        ("en", ""),
        ("es", str(chrf)),
        ("no", ""),
    }
    assert (
        f"chrF against the human-written versions): es {chrf:.1f}" in (report_dir / "report.html").read_text()
    )
    again = babeltune(
        "translate", str(cfg), f"--output_dir={tmp_path / 'again'}", env={"HF_HUB_OFFLINE": "1"}
    )
    assert again.returncode == 0, again.stderr[-2000:]
    (folder,) = (tmp_path / "again" / "translate").iterdir()
    report = read_json(folder / "translate_report.json")
    assert report["usage"]["calls"] == 0 and report["languages"]["es"]["cache_hits"] == es["segments"]


def test_test_files_keep_their_own_ids_accept_a_bom_and_say_what_they_skipped(
    tmp_path, tiny_model, chat_server
):
    tests = _test_files(tmp_path / "tests", {"en": ["EN-1", "EN-2"], "es": ["ES-7", "ES-9"]}, bom=True)
    (tests / "test_es.jsonl").write_text(
        (tests / "test_es.jsonl").read_text(encoding="utf-8") + "{broken\n", encoding="utf-8"
    )
    server = chat_server(
        lambda body, attempt: (
            "Rating: [[3]]"
            if "Question EN-1" in last_message(body) or "ES-7" in last_message(body)
            else "Rating: [[1]]"
        )
    )
    evaluate = f'{{judge: {{backend: openai, model: j, base_url: "{server.url}", api_key_env: null}}}}'
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", evaluate=evaluate,
                      test=f'{{source: "{tests}", languages: [en, es], on_error: skip}}')  # fmt: skip
    proc = babeltune("run", str(cfg))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "test prompts: skipped 1 bad line(s)" in proc.stderr  # on the console, not only in the manifest
    # The test files have no references: chrF is left out of the report with one line; the judge ran, so the
    # finding gives its score beside fidelity (issue 26, item 6).
    (page,) = (tmp_path / "run" / "report").glob("*/report.html")
    html = page.read_text()
    assert "Left out: chrF, as no test prompt has a reference answer." in html and "<th>chrF</th>" not in html
    finding = html.partition("<section id='finding'>")[2].partition("</section>")[0]
    assert "seen non-English: mean score</th>" in finding and "(judge score): not tested" in finding
    (folder,) = (tmp_path / "run" / "tests").iterdir()
    manifest = read_json(folder / "test_manifest.json")
    assert set(manifest["files"]) == {"en", "es"} and all(
        len(f["sha256"]) == 64 for f in manifest["files"].values()
    )
    prompts = [json.loads(line) for line in (folder / "test_prompts.jsonl").read_text().splitlines()]
    assert {(p["id"], p["file_id"]) for p in prompts} == {("line-0001:en", "EN-1"), ("line-0002:en", "EN-2"),
                                                         ("line-0001:es", "ES-7"), ("line-0002:es", "ES-9")}  # fmt: skip
    human = tmp_path / "human.csv"  # keyed by the test files' own ids, as the paper's human scores are
    runs = {
        p["run"]
        for f in (tmp_path / "run" / "evaluate").glob("*/scores.jsonl")
        for p in map(json.loads, f.open())
    }
    assert len(runs) == 2
    human.write_text("id,run,score\n" + "".join(f"{i},{r},{s}\n" for r in sorted(runs)
                                                 for i, s in (("EN-1", 3), ("EN-2", 1), ("ES-7", 3), ("ES-9", 1))))  # fmt: skip
    agree = babeltune("judge-agreement", str(human), str(tmp_path / "run"))
    assert agree.returncode == 0, agree.stderr
    assert re.search(r"│ en\s+│ 4\s+│ 2", agree.stdout) and re.search(r"│ es\s+│ 4\s+│ 2", agree.stdout)


def test_a_reply_without_choices_is_a_readable_failure_and_a_failed_stage_leaves_no_folder(
    tmp_path, tiny_model, chat_server
):
    server = chat_server(
        lambda body, attempt: ("raw", b'{"id": "x", "object": "chat.completion", "model": "j"}')
    )
    evaluate = f'{{judge: {{backend: openai, model: j, base_url: "{server.url}", api_key_env: null, max_retries: 1}}}}'
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", evaluate=evaluate)
    assert babeltune("run", str(cfg)).returncode == 3
    errors = {
        json.loads(line)["judge_error"]
        for p in (tmp_path / "run" / "evaluate").glob("*/scores.jsonl")
        for line in p.open()
    }
    assert errors == {"MalformedReply: the reply has no choices (after 2 attempts)"}

    translate = (
        '{enabled: true, backend: openai, model: mt, base_url: "http://127.0.0.1:9/v1", api_key_env: null}'
    )
    cfg = tiny_config(tmp_path / "exp2.yaml", tiny_model, tmp_path / "run2", translate=translate)
    assert babeltune("translate", str(cfg)).returncode == 2
    assert not (tmp_path / "run2" / "translate").exists() or not list(
        (tmp_path / "run2" / "translate").iterdir()
    )
