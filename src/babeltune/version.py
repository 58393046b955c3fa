"""The release number: part of every task key, so a new release never reuses an older one's outputs."""

__version__ = "0.4.0"
