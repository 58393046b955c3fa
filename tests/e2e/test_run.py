"""End to end: `babeltune run configs/quick.yaml` through the CLI with the embedded model, then a rerun."""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from babeltune.io import read_json
from babeltune.settings import load_yaml
from conftest import REPO, run_quick
from helpers.cli import training_metrics

pytestmark = pytest.mark.e2e


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


def test_report_has_every_language_and_regime(quick_run):
    out, proc, _ = quick_run
    (report_dir,) = (out / "report").iterdir()
    rows = list(csv.DictReader((report_dir / "summary.csv").open()))
    runs = {r["run"] for r in rows}
    assert runs == {"smollm2-135m/lora/en-only", "smollm2-135m/lora/multi-down", "smollm2-135m/lora/mono-es"}
    for run in runs:
        mine = {r["lang"]: r for r in rows if r["run"] == run}
        assert set(mine) == {"en", "es", "ru", "no"}
        for r in mine.values():
            assert 0.0 <= float(r["consistency"]) <= 1.0
            assert float(r["chrf"]) > 0
            assert int(r["judged"]) == 1 and r["score_mean"] != ""
    assert {r["seen"] for r in rows if r["lang"] == "no"} == {"False"}
    paired = list(csv.DictReader((report_dir / "paired.csv").open()))
    pairs = {(r["run_a"].split("/")[-1], r["run_b"].split("/")[-1], r["lang"]) for r in paired}
    expected = {("multi-down", "en-only", lang) for lang in ("en", "es", "ru", "no")}  # the paper's contrasts
    assert len(paired) == 5 and pairs == expected | {("multi-down", "mono-es", "es")}
    html = (report_dir / "report.html").read_text()
    assert "pipeline check, not a meaningful judge" in html
    assert "<td class='num best'>" in html  # each language's best run, by the metrics' better side
    assert "report.html" in proc.stdout and "unseen in training" in proc.stdout
    # the console holds what a user can act on: no third-party deprecation notices (PEFT's, every training)
    assert not re.search(r"(Future|Deprecation)Warning", proc.stderr), proc.stderr[-2000:]


def test_training_lowered_the_loss(quick_run):
    out, proc, _ = quick_run
    metrics = [read_json(p) for p in (out / "train").glob("*/metrics.json")]
    assert len(metrics) == 3
    for m in metrics:
        assert m["probe_loss_after"] < m["probe_loss_before"]
        assert m["probe"] == "the 4 shortest training examples" and m["probe_seconds"] < m["seconds"]
        # under bf16 autocast the frozen weights are kept in bf16 (not cast again every micro-batch)
        assert m["frozen_weights"] == {"bf16": "bfloat16", "fp32": "float32"}[m["precision"]]
    assert all((p / "adapter" / "adapter_model.safetensors").exists() for p in (out / "train").iterdir())


def test_the_report_reads_the_evaluations_alone(quick_run):
    """Issue 23: each evaluation carries its run's mixture manifest and training metrics; the report's only
    inputs are the evaluations."""
    out, _, _ = quick_run
    folders = list((out / "evaluate").iterdir())
    assert len(folders) == 3
    for folder in folders:
        upstream = read_json(folder / "evaluation.json")["upstream"]
        inputs = load_yaml((folder / "job.yaml").read_text())["inputs"]
        weights, mixture = (Path(inputs[role]["path"]) for role in ("weights", "mixture"))
        assert upstream["training"] == read_json(weights.parent / "metrics.json")
        assert upstream["mixture"] == read_json(mixture.parent / "manifest.json")
        assert upstream["mixture"]["cost_in_C"] == 1.0 and upstream["training"]["probe_loss_after"] > 0
    (report_dir,) = (out / "report").iterdir()
    inputs = load_yaml((report_dir / "job.yaml").read_text())["inputs"]
    assert sorted(inputs) == ["0000.scores", "0001.scores", "0002.scores"]


def test_rerun_reuses_every_stage(quick_run):
    out, _, first_seconds = quick_run
    proc, seconds = run_quick(out)
    assert "13 of 13 tasks already done; running 0" in proc.stdout
    assert seconds < first_seconds / 2
    (report_dir,) = (out / "report").iterdir()
    assert "evaluate:" in (report_dir / "job.yaml").read_text()  # what the report was made with


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


@pytest.mark.e2e
def test_the_readme_python_snippet_runs_and_its_models_learn(tmp_path):
    readme = (REPO / "README.md").read_text()
    snippet = readme.split("## Python API")[1].split("```python")[1].split("```")[0]
    (tmp_path / "configs").mkdir()
    shutil.copy(REPO / "configs" / "quick.yaml", tmp_path / "configs" / "quick.yaml")
    proc = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=1200
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("report.html")
    metrics = training_metrics(tmp_path / "runs" / "quick")
    assert len(metrics) == 3 and all(
        m["learned"] and m["probe_loss_after"] < m["probe_loss_before"] for m in metrics
    )
    assert json.loads((tmp_path / "runs" / "quick" / "report").glob("*/finding.json").__next__().read_text())[
        "runs"
    ]
