"""The evaluate stage with a judgement cache beside its folder, for its in-process and CLI tests."""

from babeltune.evaluate.stage import run as evaluate


def run(cfg, responses, out_dir):
    """The evaluate stage with a judgement cache beside its folder; returns scores.jsonl."""
    evaluate(cfg, responses, out_dir, out_dir.parent / "judgements")
    return out_dir / "scores.jsonl"
