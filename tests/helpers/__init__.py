"""Helpers the test files share (tests/ is on pytest's pythonpath)."""
