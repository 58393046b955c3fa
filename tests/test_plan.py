"""The paper's grid as one config: runs per regime, equal budgets, GPU-hour estimate, Slurm script, and a
plan that needs no data."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from babeltune import config
from babeltune.experiment import build_plan, select_task
from babeltune.planning import mixture_table, slurm_script, training_rows

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def paper():
    return build_plan(config.load(REPO / "configs/paper.yaml"))  # no download: data.size_hint stands in


def test_paper_grid_has_the_papers_runs(paper):
    rows = training_rows(paper, mixture_table(paper)[0])
    models, methods = len(paper.cfg.models), len(paper.cfg.train.methods)
    assert (models, methods) == (14, 2)
    per_regime = Counter(r["regime"] for r in rows)
    assert per_regime == {
        "monolingual": 9 * models * methods,  # N = 9 monolingual runs per model and method
        "multilingual": models * methods,
        "english-only": models * methods,
        "multilingual-downsampled": models * methods,
    }
    # Equal budgets where the paper says so: one monolingual set = English-only = downsampled = C.
    sizes = {(r["regime"], r["examples"]) for r in rows}
    assert sizes == {("monolingual", 51760), ("english-only", 51760), ("multilingual-downsampled", 51760),
                     ("multilingual", 9 * 51760)}  # fmt: skip
    assert sum(r["cost_in_C"] for r in rows) == 20 * models * methods
    assert all(r["gpu_hours"] > 0 for r in rows)
    bloom_lora = next(r for r in rows if r["run"] == "bloom-7b1/lora/multi")
    bloom_full = next(r for r in rows if r["run"] == "bloom-7b1/full/multi")
    assert bloom_full["gpu_hours"] == pytest.approx(bloom_lora["gpu_hours"] * (3 * 6) / (5 * 4), rel=0.01)


def test_the_slurm_script_sizes_each_array_from_its_model(paper):
    rows = training_rows(paper, mixture_table(paper)[0])
    script = slurm_script(paper, Path("configs/paper.yaml"), ["--train.seed=1"], rows)
    arrays = [line for line in script.splitlines() if line.startswith("jobs+=")]
    assert len(arrays) > 1  # one submission per resource size, not one size for all
    covered = sorted(int(i) for line in arrays for part in line.split("--array=")[1].split()[0].split(",")
                     for i in (range(int(part.split("-")[0]), int(part.split("-")[-1]) + 1)))  # fmt: skip
    assert covered == list(range(336))
    small = next(line for line in arrays if "--array=0-" in line)  # bloom-560m comes first
    big = next(line for line in arrays if "--mem=128G" in line)  # a 7B model needs more host memory and time
    assert "--mem=32G" in small and int(big.split("--time=")[1].split(":")[0]) > int(
        small.split("--time=")[1].split(":")[0]
    )
    assert f"{sys.executable} -m babeltune run {REPO / 'configs/paper.yaml'} --train.seed=1" in script
    assert "--dependency=afterok:" in script and " report " in script


def test_plan_writes_the_script_and_its_log_folder(tmp_path):
    out = tmp_path / "paper.sbatch"
    proc = subprocess.run([sys.executable, "-m", "babeltune", "plan", "configs/paper.yaml", "--slurm", str(out),
                           f"--output_dir={tmp_path / 'run'}"], capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().startswith("#!/bin/bash") and (tmp_path / "run" / "slurm").is_dir()
    assert f"#SBATCH --output={tmp_path / 'run' / 'slurm'}/%A_%a.out" in out.read_text()


def test_a_task_id_selects_one_chain(paper):
    plan = build_plan(paper.cfg)
    select_task(plan, 7)
    name = plan.points[7].name
    assert {t.stage for t in plan.tasks} == {"data", "mix", "train", "generate", "evaluate"}
    assert {t.name for t in plan.tasks if t.stage in ("train", "generate", "evaluate")} == {name}


def test_plan_needs_no_data_at_all(tmp_path):
    """The paper's grid with its hub data out of reach and no size hint: every task is listed."""
    proc = subprocess.run(
        [sys.executable, "-m", "babeltune", "plan", "configs/paper.yaml", "--data.size_hint=null", "--json",
         f"--output_dir={tmp_path}"], capture_output=True, text=True, cwd=REPO, env={"HF_HUB_OFFLINE": "1", "PATH": ""},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert Counter(r["stage"] for r in rows) == {"data": 2, "mix": 1, "train": 336, "generate": 336,
                                                 "evaluate": 336, "report": 1}  # fmt: skip
    assert all(r["todo"] for r in rows) and not list(tmp_path.iterdir())  # planning wrote nothing
    text = subprocess.run([sys.executable, "-m", "babeltune", "plan", "configs/paper.yaml", "--data.size_hint=null",
                           f"--output_dir={tmp_path}"], capture_output=True, text=True, cwd=REPO).stdout  # fmt: skip
    assert "sizes from nothing: the data is not at hand" in text and "mono-bg" in text
