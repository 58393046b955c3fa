"""The paper's grid as one config: runs per regime, equal budgets, GPU-hour estimate, Slurm script."""

from collections import Counter
from pathlib import Path

import pytest

from babeltune import config
from babeltune.cli import main
from babeltune.experiment import build_plan, select_task
from babeltune.planning import slurm_script, training_rows

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def paper():
    return build_plan(config.load(REPO / "configs/paper.yaml"))  # no download: data.size_hint stands in


def test_paper_grid_has_the_papers_runs(paper):
    rows = training_rows(paper)
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


def test_slurm_array_runs_one_task_per_training_run(paper, tmp_path):
    script = slurm_script(paper, Path("configs/paper.yaml"), training_rows(paper))
    assert "#SBATCH --array=0-335" in script and "#SBATCH --gres=gpu:1" in script
    assert 'babeltune run configs/paper.yaml --task "$SLURM_ARRAY_TASK_ID"' in script
    out = tmp_path / "paper.sbatch"
    assert main(["plan", "configs/paper.yaml", "--slurm", str(out)]) == 0
    assert out.read_text() == script


def test_a_task_id_selects_one_chain(paper):
    plan = build_plan(paper.cfg)
    select_task(plan, 7)
    name = plan.results[7].name
    assert {t.stage for t in plan.tasks} == {"data", "mix", "train", "generate", "evaluate"}
    assert {t.name for t in plan.tasks if t.stage in ("train", "generate", "evaluate")} == {name}
