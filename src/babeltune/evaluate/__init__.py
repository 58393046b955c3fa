"""Evaluate stage: language identification, reference metrics and an LLM judge."""

from babeltune.evaluate.stage import run

__all__ = ["run"]
