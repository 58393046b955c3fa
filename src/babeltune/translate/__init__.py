"""Translate stage: machine-translate instruction data with caching, protection of code, and quality filters."""

from babeltune.translate.stage import run

__all__ = ["run"]
