"""Data stage: load instruction data from any supported source into the one example schema."""

from babeltune.data.stage import run

__all__ = ["run"]
