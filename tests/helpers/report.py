"""Evaluated runs made up for the report's tests: four prompts in en, es and bn, Spanish answered in
Spanish or in English."""

from babeltune.io import write_json, write_jsonl
from babeltune.report.stage import RunResult


def evaluated_run(
    tmp_path, name, match_es, parameters=None, model="", method="", regime="x", languages=("en",)
):
    d = tmp_path / name.replace("/", "-")
    responses, scores = [], []
    for lang in ("en", "es", "bn"):
        for k in range(4):
            rid = f"p{k}:{lang}"
            ok = lang != "es" or match_es
            responses.append({"id": rid, "prompt": f"question {k} in {lang}"})
            scores.append(
                {
                    "id": rid,
                    "source_id": f"p{k}",
                    "lang": lang,
                    "run": name,
                    "response": f"answer {k}",
                    "detected_lang": lang if ok else "en",
                    "lid_confidence": 0.9,
                    "verdict": "ok" if ok else "wrong-language",
                    "lang_match": ok,
                    "judge_score": 2 if k < 3 else None,
                    "judge_raw": "[[2]]" if k < 3 else "??",
                    "final_score": (2 * ok) if k < 3 else None,
                    "chrf": 10.0 * (k + 1),
                    "prompt": f"question {k} in {lang}",
                }
            )
    write_jsonl(d / "responses.jsonl", responses)
    write_jsonl(d / "scores.jsonl", scores)
    manifest = {"examples": 10, "per_language": {"en": 10}, "cost_in_C": 1.0, "languages": list(languages)}
    metrics = {"probe_loss_before": 3.0, "probe_loss_after": 2.0, "seconds": 5, "tokens_per_second": 100}
    write_json(
        d / "evaluation.json",
        {"judge": {"pipeline_check_only": True, "model": "builtin:x", "prompt": "paper-1to3"},
         "upstream": {"mixture": manifest, "training": metrics | ({"parameters": parameters} if parameters else {})}},
    )  # fmt: skip
    return RunResult(name, regime, d / "scores.jsonl", model=model, method=method)
