"""Evaluate stage: one ``scores.jsonl`` row per response, and ``evaluation.json`` with the run's summary.

The paper's score is ``judge score x language match``: an answer in the wrong language scores 0.
Judgements are cached in ``judgements.jsonl`` as they arrive (keyed by judge prompt version, judge
model, question and answer), so a rerun makes no calls and a killed run re-judges nothing; a
judgement the endpoint never gave is not cached and is retried by the next run.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from babeltune.config import EvaluateArgs
from babeltune.evaluate import judge as judges
from babeltune.evaluate.langid import detect, matches
from babeltune.evaluate.metrics import chrf, pearson
from babeltune.io import read_jsonl, write_json, write_jsonl
from babeltune.retry import Usage


def is_pipeline_check(cfg: EvaluateArgs) -> bool:
    """A judge that is the tiny embedded model only proves the pipeline runs; reports must say so."""
    return cfg.judge.enabled and cfg.judge.backend == "local" and cfg.judge.model.startswith("builtin:")


def _judge_subset(responses: list[dict], limit: int | None) -> list[dict]:
    if limit is None:
        return responses
    seen: Counter[tuple[str, str]] = Counter()
    chosen = []
    for r in sorted(responses, key=lambda r: r["id"]):
        seen[r["run"], r["lang"]] += 1
        if seen[r["run"], r["lang"]] <= limit:
            chosen.append(r)
    return chosen


def _judge(
    cfg: EvaluateArgs, responses: list[dict], out_dir: Path, usage: Usage
) -> dict[str, judges.Judgement]:
    """Judge responses (a subset if configured); returns response id -> judgement."""
    prompt = judges.load_prompt(cfg.judge.prompt)
    wanted = {}
    for r in _judge_subset(responses, cfg.judge.max_per_language):
        key = judges.item_key(prompt, cfg.judge.model, r["prompt"], r["response"], r["lang"])
        wanted[r["id"]] = judges.JudgeItem(key, r["prompt"], r["response"], r["lang"])
    found = judges.judge_with_cache(
        cfg.judge, prompt, list(wanted.values()), out_dir / "judgements.jsonl", usage
    )
    return {rid: found[item.key] for rid, item in wanted.items()}


def score_row(
    r: dict, lang: str, confidence: float, judgement: judges.Judgement | None, cfg: EvaluateArgs
) -> dict:
    match = matches(r["lang"], lang, cfg.langid)
    score = judgement.score if judgement else None
    return {
        "id": r["id"],
        "source_id": r["source_id"],
        "lang": r["lang"],
        "run": r["run"],
        "response": r["response"],
        "detected_lang": lang,
        "lid_confidence": round(confidence, 4),
        "lang_match": match,
        "judge_score": score,
        "judge_raw": judgement.raw if judgement and judgement.error is None else None,
        "judge_error": judgement.error if judgement else None,
        "final_score": None if score is None else score * int(match),
        "chrf": chrf(r["response"], r["reference"]) if cfg.chrf and r.get("reference") else None,
    }


def judge_summary(cfg: EvaluateArgs, rows: list[dict], usage: Usage) -> dict:
    judged = [r for r in rows if r["judge_raw"] is not None]
    rated = [r for r in judged if r["judge_score"] is not None]
    cost = (
        usage.input_tokens * cfg.judge.price_per_million_input
        + usage.output_tokens * cfg.judge.price_per_million_output
    )
    return {
        "prompt": cfg.judge.prompt if cfg.judge.enabled else None,
        "backend": cfg.judge.backend,
        "model": cfg.judge.model,
        "judged": len(judged),
        "unparsable": len(judged) - len(rated),
        "failed": sum(r["judge_error"] is not None for r in rows),
        "pipeline_check_only": is_pipeline_check(cfg),
        "usage": usage.as_dict() | {"cost": round(cost / 1e6, 6)},
        # A judge that prefers long answers shows a positive correlation between score and length.
        "bias": {
            "score_length_pearson": pearson(
                [len(r["response"]) for r in rated], [r["judge_score"] for r in rated]
            )
        },
    }


def run(cfg: EvaluateArgs, responses_path: Path, out_dir: Path) -> Path:
    """Score every response in ``responses_path``; writes ``scores.jsonl`` and ``evaluation.json``."""
    responses = read_jsonl(responses_path)
    detections = detect([r["response"] for r in responses], cfg.langid)
    usage = Usage()
    judged = _judge(cfg, responses, out_dir, usage) if cfg.judge.enabled else {}
    rows = [
        score_row(r, d.lang, d.confidence, judged.get(r["id"]), cfg)
        for r, d in zip(responses, detections, strict=True)
    ]
    write_json(
        out_dir / "evaluation.json",
        {
            "judge": judge_summary(cfg, rows, usage),
            "langid": {
                "backend": cfg.langid.backend,
                "model_path": cfg.langid.model_path or "bundled",
                "min_letters": cfg.langid.min_letters,
                "confusable": cfg.langid.confusable,
                "confusable_policy": cfg.langid.confusable_policy,
            },
        },
    )
    path = out_dir / "scores.jsonl"
    write_jsonl(path, rows)
    return path
