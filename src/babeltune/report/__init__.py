"""Report stage: tables, plots and a single-file HTML page over all runs."""

from babeltune.report.stage import run

__all__ = ["run"]
