"""Planning the paper's grid: runs per regime, equal budgets, GPU-hour and memory estimates, the Slurm script."""

import sys
from collections import Counter
from pathlib import Path

import pytest

from babeltune import config
from babeltune.cluster.script import slurm_script, too_big
from babeltune.experiment import build_plan, select_task
from babeltune.planning import mixture_table, training_rows
from conftest import REPO


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


def test_the_slurm_script_sizes_each_array_from_its_model(paper, tmp_path):
    rows = training_rows(paper, mixture_table(paper)[0])
    script = slurm_script(paper, Path("configs/paper.yaml"), ["--train.seed=1"], rows, tmp_path / "paper.sh")
    arrays = [line for line in script.splitlines() if line.startswith("arrays+=")]
    assert len(arrays) > 1  # one submission per resource size, not one size for all
    covered = sorted(int(i) for line in arrays for part in line.split("--array=")[1].split()[0].split(",")
                     for i in (range(int(part.split("-")[0]), int(part.split("-")[-1]) + 1)))  # fmt: skip
    assert covered == list(range(336))
    small = next(line for line in arrays if "--array=0-" in line)  # bloom-560m comes first
    big = next(line for line in arrays if "--mem=128G" in line)  # a 7B model needs more host memory and time
    assert "--mem=32G" in small and int(big.split("--time=")[1].split(":")[0]) > int(
        small.split("--time=")[1].split(":")[0]
    )
    assert all("--requeue --signal=B:USR1@300" in line and "$after" in line for line in arrays)
    assert f"{sys.executable} -m babeltune run {REPO / 'configs/paper.yaml'} --train.seed=1 --task" in script
    assert "prep=$(submit" in script and "--dependency=afterok:$prep" in script
    assert '--dependency=afterany:"$(IFS=:; echo "${arrays[*]}")"' in script and "report " in script


def test_a_model_that_outgrows_one_gpu_is_named_with_the_methods_own_setting(paper):
    rows = training_rows(paper, mixture_table(paper)[0])
    lines = too_big(
        paper, rows
    )  # the paper's site: 80 GB GPUs; full training of a 7B model needs ~16 B/param
    assert lines and all(
        "full" in line.split(" (")[0] for line in lines
    )  # LoRA fits, full-parameter does not
    assert all("train.full_nproc=" in line and "accelerate_config" in line for line in lines)


def test_site_settings_reach_every_job_and_cpu_clusters_ask_for_no_gpu(paper, tmp_path):
    cfg = config.load(REPO / "configs/paper.yaml", [
        "--slurm.gpus=0", "--slurm.partition=cpu", "--slurm.account=lab", "--slurm.throttle=20",
        "--slurm.extra=[--mail-type=FAIL]", "--slurm.setup=[module load cuda]", "--slurm.times={'*/full/*': 3-00:00:00}",
    ])  # fmt: skip
    plan = build_plan(cfg)
    rows = training_rows(plan, mixture_table(plan)[0])
    script = slurm_script(plan, Path("configs/paper.yaml"), [], rows, tmp_path / "s.sh")
    assert "--gres" not in script and "\nmodule load cuda\n" in script
    submits = [line for line in script.splitlines() if "$(submit" in line]
    assert len(submits) >= 4 and all("--partition=cpu --account=lab --mail-type=FAIL" in s for s in submits)
    arrays = [line for line in submits if "--array=" in line]
    assert all("%20 " in line for line in arrays)
    assert any("--time=3-00:00:00" in line for line in arrays)


def test_a_task_id_selects_one_chain(paper):
    plan = build_plan(paper.cfg)
    select_task(plan, 7)
    name = plan.points[7].name
    assert {t.stage for t in plan.tasks} == {"data", "mix", "train", "generate", "evaluate"}
    assert {t.name for t in plan.tasks if t.stage in ("train", "generate", "evaluate")} == {name}
