"""babeltune: monolingual or multilingual instruction tuning under a fixed budget.

A small Python API for notebooks; every stage is also importable on its own
(``babeltune.data``, ``babeltune.mix``, ``babeltune.train``, ``babeltune.generate``,
``babeltune.evaluate``, ``babeltune.report``).
"""

from __future__ import annotations

from pathlib import Path

from babeltune.version import __version__

__all__ = ["__version__", "load_config", "run_experiment"]


def load_config(path: str | Path | None = None, overrides: list[str] = ()):
    """Load an experiment YAML (or the defaults) with ``group.field=value`` overrides."""
    from babeltune.config import load

    return load(path, overrides)


def run_experiment(cfg):
    """Run every unfinished task of the grid; returns the plan (its ``report_dir`` holds report.html)."""
    from babeltune.experiment import build_plan, execute

    plan = build_plan(cfg)
    execute(plan)
    return plan
