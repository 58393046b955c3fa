"""Nothing lost, nothing leaked: concurrent runs, unwritable outputs, interruption, secrets."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from babeltune.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_an_unwritable_output_directory_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["data", "configs/quick.yaml", f"--output_dir={blocker / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("babeltune: error: output_dir: cannot write to") and "Traceback" not in err


def _quick(out: Path, **popen):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "babeltune", "run", "configs/quick.yaml", f"--output_dir={out}"]
    return subprocess.Popen(cmd, cwd=REPO, env=env, text=True, **popen)


def _results(root: Path) -> dict[str, str]:
    """Every result file of a run directory, by its path relative to the stage folder's kind."""
    out = {}
    for pattern in (
        "mix/*/*/mixture.jsonl",
        "generate/*/responses.jsonl",
        "evaluate/*/scores.jsonl",
        "report/*/summary.csv",
    ):
        for path in root.glob(pattern):
            lines = path.read_text().splitlines()
            key = str(path.relative_to(root))
            out[key] = "\n".join(
                sorted(lines) if path.suffix == ".jsonl" else lines
            )  # resumed logs may reorder
    return out


@pytest.mark.e2e
def test_sigkill_during_training_generation_and_evaluation_then_resume(tmp_path, quick_run):
    reference = quick_run[0]  # the same config run without interruption
    out, kills = tmp_path / "killed", []
    for marker, delay in (("train: smollm2-135m/lora/multi-down", 4), ("generate: smollm2-135m/lora/mono-es", 1),
                          ("evaluate: smollm2-135m/lora/mono-es", 1)):  # fmt: skip
        errors = (tmp_path / f"stderr-{len(kills)}.txt").open("w")
        proc = _quick(out, stdout=subprocess.PIPE, stderr=errors)
        for line in proc.stdout:
            if marker in line:
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=900)
        kills.append(proc.returncode)
    assert kills == [-signal.SIGKILL] * 3, [
        (tmp_path / f"stderr-{i}.txt").read_text()[-3000:] for i in range(3)
    ]
    final = _quick(out, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    stdout, _ = final.communicate(timeout=900)
    assert final.returncode == 0 and "tasks already done" in stdout
    assert _results(out) == _results(reference)
    assert not list(out.rglob("*.tmp"))  # no half-written file left behind as if complete


@pytest.mark.slow
def test_an_api_key_never_reaches_a_file_or_the_output(
    tmp_path, tiny_model, chat_server, monkeypatch, capsys
):
    key = "sk-LEAK-CANARY-0123456789abcdef"
    monkeypatch.setenv("BT_SECRET", key)

    def reply(body, attempt):
        text = body["messages"][-1]["content"]
        if "[Question]" in text:
            return "Fine. Rating: [[2]]"
        return "[es] " + text.partition("\n\n")[2]

    server = chat_server(reply)
    cfg = tmp_path / "secret.yaml"
    cfg.write_text(f"""# babeltune run secret.yaml
name: secret
output_dir: {tmp_path / "run"}
data: {{languages: [en, es], max_examples_per_language: 4}}
translate: {{enabled: true, backend: openai, model: mt, base_url: "{server.url}", api_key_env: BT_SECRET,
            check_language: false, min_length_ratio: 0.0, max_length_ratio: 100.0}}
test: {{languages: [en, es], max_prompts: 2}}
mix: {{regimes: [english-only, multilingual-downsampled]}}
models: [{{name: "{tiny_model}"}}]
train: {{epochs: 1, batch_size: 4, grad_accum: 1}}
generate: {{max_new_tokens: 4}}
evaluate: {{judge: {{backend: openai, model: judge, base_url: "{server.url}", api_key_env: BT_SECRET}}}}
""")
    assert main(["run", str(cfg)]) == 0
    out = capsys.readouterr()
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert len(files) > 40 and server.calls > 0
    leaks = [str(p) for p in files if key.encode() in p.read_bytes()]
    assert leaks == [] and key not in out.out + out.err
    jobs = [p.read_text() for p in (tmp_path / "run" / "evaluate").glob("*/job.yaml")]
    assert jobs and all("api_key_env: BT_SECRET" in job for job in jobs)  # the name, not the key
