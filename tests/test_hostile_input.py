"""Nothing wrong, nothing leaked, nothing hangs: hostile input through the `babeltune` command."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from babeltune import config
from babeltune.registry import BabeltuneError
from conftest import REPO, babeltune, tiny_config

KEY = "sk-LEAKY-0123456789abcdef"


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The error, which ends stderr: one line, or one line with the listing of the bad records under it."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    errors = [line for line in proc.stderr.splitlines() if "babeltune: error: " in line]
    assert len(errors) == 1 and errors[0].startswith("babeltune: error: "), proc.stderr[-2000:]
    error = proc.stderr[proc.stderr.index(errors[0]) :].rstrip()
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return error  # progress bars may come before it, on lines of their own


def test_a_test_file_with_an_id_twice_is_refused_naming_both_lines(tmp_path, tiny_model):
    tests = tmp_path / "tests"
    tests.mkdir()
    for lang in ("en", "es"):
        rows = [
            {"id": "q1", "prompt": f"{lang} one"},
            {"id": "q2", "prompt": f"{lang} two"},
            {"id": "q1", "prompt": "x"},
        ]
        (tests / f"test_{lang}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    test = f'{{source: "{tests}", languages: [en, es], align: id}}'
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", test=test)
    proc = babeltune("data", str(cfg))  # every bad line is listed, one a line
    assert (
        proc.returncode == 2
        and f"{tests / 'test_en.jsonl'}:3: duplicate id 'q1' (also on line 1)" in proc.stderr
    )
    skipped = babeltune("data", str(cfg), "--test.on_error=skip")
    assert skipped.returncode == 0, skipped.stderr
    (folder,) = (tmp_path / "run" / "tests").iterdir()
    prompts = [json.loads(line) for line in (folder / "test_prompts.jsonl").read_text().splitlines()]
    assert sorted(p["id"] for p in prompts) == ["q1:en", "q1:es", "q2:en", "q2:es"]
    assert {p["id"]: p["prompt"] for p in prompts}["q1:en"] == "en one"  # the first, not the duplicate


def test_training_data_with_an_id_twice_is_refused(tmp_path, tiny_model):
    data = tmp_path / "alpaca.jsonl"
    data.write_text(
        "".join(json.dumps({"id": i, "instruction": "Do it", "output": "Done"}) + "\n" for i in (1, 2, 1))
    )
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", data=f'{{source: "{data}", languages: [en]}}',
                      mix="{regimes: [english-only]}", test="{languages: [en]}")  # fmt: skip
    assert f"{data}:3: duplicate id '1' (also at {data}:1)" in _one_line_error(babeltune("data", str(cfg)))


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
    line = _one_line_error(proc)
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
    line = _one_line_error(babeltune("run", str(cfg)))
    assert "evaluate.judge: cannot reach http://127.0.0.1:9/v1 (APIConnectionError)" in line
    assert time.perf_counter() - start < 60  # retried once per item with backoff, it would take minutes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdef", "bcdefg", strict=True)
            ),
            "more than 100,000 values",
        ),
        ("a: " + "[" * 20_000 + "]" * 20_000 + "\n", "nested more than 100 levels deep"),
        ("name: a\nname: b\n", "exp.yaml:2: invalid YAML: duplicate key 'name'"),
        ("train: {epochs: " + "9" * 5000 + "}\n", "exp.yaml:1: invalid YAML: a number of 5000 digits"),
    ],
    ids=["alias bomb", "20,000 nested lists", "duplicate key", "a huge number"],
)
def test_yaml_bombs_fail_fast_and_briefly(tmp_path, text, message):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(BabeltuneError) as err:
        config.load(path)
    assert time.perf_counter() - start < 1 and message in str(err.value) and len(str(err.value)) < 300


def _fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    ("where", "make", "message"),
    [
        ("config", lambda tmp: "/dev/zero", "is not a regular file"),
        ("config", _fifo, "is not a regular file"),
        ("config", lambda tmp: tmp, "is a folder, not a file"),
        ("data", lambda tmp: "/dev/zero", "is not a regular file"),
        ("data", _fifo, "is not a regular file"),
        ("data", lambda tmp: tmp, "a folder, but not a datasets save_to_disk folder"),
        ("test", lambda tmp: "/dev/zero", "is not a regular file"),
        ("test", _fifo, "is not a regular file"),
        ("test", lambda tmp: tmp, "is a folder, not a file"),
        (
            "data",
            lambda tmp: (tmp / "loop").symlink_to(tmp / "loop") or tmp / "loop",
            "Too many levels of symbolic links",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_devices_pipes_and_folders_are_clear_errors(tmp_path, tiny_model, where, make, message):
    target = str(make(tmp_path))
    if where == "config":
        cmd = ["data", target]
    else:
        group = (f'{{source: "{target}", languages: [en]}}' if where == "data"
                 else f'{{files: {{en: "{target}"}}, languages: [en]}}')  # fmt: skip
        cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", **{where: group},
                          mix="{regimes: [english-only]}", **({"data": "{languages: [en]}"} if where == "test" else {}))  # fmt: skip
        cmd = ["data", str(cfg)]
    start = time.perf_counter()
    line = _one_line_error(babeltune(*cmd, timeout=60))
    assert message in line and time.perf_counter() - start < 10


def test_a_huge_jsonl_line_is_refused_naming_the_limit(tmp_path, tiny_model):
    data = tmp_path / "big.jsonl"
    data.write_text(json.dumps({"instruction": "x" * 5_000_000, "output": "y"}) + "\n")
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", data=f'{{source: "{data}", languages: [en]}}',
                      mix="{regimes: [english-only]}", test="{languages: [en]}")  # fmt: skip
    line = _one_line_error(babeltune("data", str(cfg)))
    assert f"{data}:1: line over 4,000,000 bytes (data.max_record_bytes raises the limit)" in line


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--generate.batch_size=0", "generate.batch_size: must be at least 1, got 0"),
        ("--generate.max_new_tokens=0", "generate.max_new_tokens: must be at least 1, got 0"),
        ("--generate.num_beams=0", "generate.num_beams: must be at least 1, got 0"),
        ("--train.batch_size=0", "train.batch_size: must be at least 1, got 0"),
        ("--lora.r=0", "lora.r: must be at least 1, got 0"),
        ("--test.max_prompts=-1", "test.max_prompts: must be at least 1, got -1"),
        (
            "--train.max_steps=100000000000000000000000000000",
            "train.max_steps: must be at most 1,000,000,000",
        ),
        ("--evaluate.judge.concurrency=0", "evaluate.judge.concurrency: must be at least 1, got 0"),
        ("--models.3.name=x", "--models.3.name: models: no item '3' (it has 1; 1 adds one)"),
        ("--train.epochs.x=1", "--train.epochs.x: train.epochs is a value, not a group of settings"),
        ("--train.epochs=[1", "--train.epochs: invalid YAML value '[1'"),
        ("--name=../../etc", "name: '../../etc' is not a plain folder name"),
    ],
)
def test_bad_values_fail_when_the_config_loads_naming_the_field(override, message):
    line = _one_line_error(babeltune("plan", "configs/quick.yaml", override))
    assert message in line


def test_a_torn_trainer_state_is_skipped_and_said(tmp_path, capsys):
    from babeltune.train.resume import CHECKPOINT_FILES, last_complete_checkpoint

    for step, state in ((2, '{"global_step": 2}'), (4, '{"global_st')):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        for name in CHECKPOINT_FILES:
            (folder / name).write_text(state if name == "trainer_state.json" else "x")
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    assert "checkpoint-4: unreadable trainer_state.json" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2"]


def test_a_killed_conversion_leaves_no_folder_behind(tmp_path, monkeypatch):
    """The next conversion clears what a killed one half-wrote (under a lock, so never a live one's)."""
    from babeltune import models

    monkeypatch.setenv("BABELTUNE_CACHE", str(tmp_path))
    stale = tmp_path / "models" / ".smollm2-135m.abc123"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"x" * 1000)
    made = []
    monkeypatch.setattr(models, "_dequantise", lambda name, target: made.append(target) or target.mkdir())
    models._convert_embedded("builtin:smollm2-135m")
    assert made and not stale.exists()


@contextlib.contextmanager
def tmpfs(room, size: str):
    """A real tmpfs of ``size`` at ``room`` for the block (the test is skipped where mounting is not allowed)."""
    room.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(room)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield room
    finally:
        subprocess.run(["umount", str(room)], check=True)


def test_a_full_disk_during_training_is_one_clear_line(tmp_path):
    """A real 30 MB tmpfs as the run directory: the checkpoint's safetensors write fails for want of room."""
    from babeltune import tiny

    with tmpfs(tmp_path / "room", "30M") as room:
        model = tiny.llama(tmp_path / "model", hidden=512, layers=4, heads=8)  # 42 MB of weights
        cfg = tiny_config(tmp_path / "exp.yaml", model, room / "run", data="{languages: [en], max_examples_per_language: 8}",
                          mix="{regimes: [english-only]}", test="{languages: [en]}",
                          train="{methods: [full], max_steps: 2, eval_every: 1, batch_size: 4, grad_accum: 1}")  # fmt: skip
        line = _one_line_error(babeltune("train", str(cfg)))
        assert "no space left on the device; finished tasks are kept, rerun when there is room" in line
        assert len(list((room / "run" / "data").iterdir())) == 1  # the data task is kept


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
