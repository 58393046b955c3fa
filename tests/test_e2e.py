"""End to end: `babeltune run configs/quick.yaml` through the CLI with the embedded model, then a rerun."""

import csv
import re
from pathlib import Path

import pytest

from babeltune.io import read_json
from babeltune.settings import load_yaml
from conftest import run_quick

pytestmark = pytest.mark.e2e


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
