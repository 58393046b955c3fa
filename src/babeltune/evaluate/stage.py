"""Evaluate stage: one ``scores.jsonl`` row per response.

The paper's score is ``judge score x language match``: an answer in the wrong language scores 0.
Judgements are appended to ``judgements.jsonl`` as they arrive, so a killed run re-judges nothing.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from babeltune.config import EvaluateArgs
from babeltune.evaluate import judge as judges
from babeltune.evaluate.langid import detect
from babeltune.evaluate.metrics import chrf
from babeltune.io import AppendLog, read_jsonl, write_json, write_jsonl


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


def _judge(cfg: EvaluateArgs, responses: list[dict], out_dir: Path) -> dict[str, judges.Judgement]:
    """Judge responses (a subset if configured); returns response id -> judgement."""
    prompt = judges.load_prompt(cfg.judge.prompt)
    wanted = {}
    for r in _judge_subset(responses, cfg.judge.max_per_language):
        key = judges.item_key(prompt, cfg.judge.model, r["prompt"], r["response"], r["lang"])
        wanted[r["id"]] = judges.JudgeItem(key, r["prompt"], r["response"], r["lang"])
    with AppendLog(out_dir / "judgements.jsonl") as log:
        cached = {row["key"]: judges.Judgement(row["score"], row["raw"]) for row in log.rows}
        todo = list({item.key: item for item in wanted.values() if item.key not in cached}.values())
        bar = tqdm(total=len(todo), desc="judge", unit="answer", disable=not todo)

        def done(item: judges.JudgeItem, judgement: judges.Judgement) -> None:
            log.append({"key": item.key, "score": judgement.score, "raw": judgement.raw})
            cached[item.key] = judgement
            bar.update(1)

        if todo:
            judges.BACKENDS.get(cfg.judge.backend)(cfg.judge, prompt, todo, done)
        bar.close()
    return {rid: cached[item.key] for rid, item in wanted.items()}


def score_row(
    r: dict, lang: str, confidence: float, judgement: judges.Judgement | None, with_chrf: bool
) -> dict:
    match = lang == r["lang"]
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
        "judge_raw": judgement.raw if judgement else None,
        "final_score": None if score is None else score * int(match),
        "chrf": chrf(r["response"], r["reference"]) if with_chrf and r.get("reference") else None,
    }


def run(cfg: EvaluateArgs, responses_path: Path, out_dir: Path) -> Path:
    """Score every response in ``responses_path``; writes ``scores.jsonl`` and ``evaluation.json``."""
    responses = read_jsonl(responses_path)
    detections = detect([r["response"] for r in responses], cfg.langid)
    judged = _judge(cfg, responses, out_dir) if cfg.judge.enabled else {}
    rows = [
        score_row(r, d.lang, d.confidence, judged.get(r["id"]), cfg.chrf)
        for r, d in zip(responses, detections, strict=True)
    ]
    unparsable = sum(1 for j in judged.values() if j.score is None)
    write_json(
        out_dir / "evaluation.json",
        {
            "judge": {
                "prompt": cfg.judge.prompt if cfg.judge.enabled else None,
                "backend": cfg.judge.backend,
                "model": cfg.judge.model,
                "judged": len(judged),
                "unparsable": unparsable,
                "pipeline_check_only": is_pipeline_check(cfg),
            },
            "langid": {
                "backend": cfg.langid.backend,
                "model_path": cfg.langid.model_path or "bundled lid.176.ftz",
            },
        },
    )
    path = out_dir / "scores.jsonl"
    write_jsonl(path, rows)
    return path
