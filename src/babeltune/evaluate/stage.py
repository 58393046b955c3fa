"""Evaluate stage: one ``scores.jsonl`` row per response, and ``evaluation.json`` with the run's summary.

The paper's score is ``judge score x language match``: an answer in the wrong language scores 0.
Judgements go to the run's judgement cache as they arrive (keyed by the judge's model, prompt version and
decoding, the question and the answer), so a rerun makes no calls, a killed run re-judges nothing, and a
new evaluate task (another language-ID setting, more prompts) pays only for what is new. A judgement the
endpoint never gave is not cached: the task is incomplete and the next run retries exactly those.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from babeltune import records
from babeltune.checkpoint import metrics_file
from babeltune.content_cache import ContentCache, run_cache
from babeltune.evaluate import fidelity
from babeltune.evaluate import judge as judges
from babeltune.evaluate.judge import JudgeArgs
from babeltune.evaluate.metrics import chrf, pearson
from babeltune.io import read_json, write_json, write_jsonl
from babeltune.langid import LangIdArgs
from babeltune.mix import manifest_file
from babeltune.records import Response, Score
from babeltune.retry import Usage
from babeltune.settings import setting
from babeltune.tasks import Outcome, Output, Task

SCORES = "scores.jsonl"
EVALUATION = "evaluation.json"


@dataclass
class EvaluateArgs:
    langid: LangIdArgs = setting(LangIdArgs(), "language identification")
    judge: JudgeArgs = setting(JudgeArgs(), "LLM judge")
    chrf: bool = setting(True, "compute chrF against reference answers when the test set has them")

    def check(self, where: str) -> None:
        self.langid.check(f"{where}.langid")
        self.judge.check(f"{where}.judge")


@dataclass
class EvaluateJob:
    evaluate: EvaluateArgs
    judge_prompt: str | None  # the judge prompt's fingerprint: a reworded prompt re-judges

    def work(self, inputs: dict[str, Path], out_dir: Path) -> Outcome:
        """Judgements are paid for once per run directory: its judgement cache is shared by every task."""
        return run(self.evaluate, inputs["responses"], out_dir, run_cache(out_dir.parents[1], "judgements"),
                   upstream(inputs))  # fmt: skip

    def locate(self, folder: Path, part: str) -> Path:
        return folder / SCORES


def upstream(inputs: dict[str, Path]) -> dict:
    """What the report needs to know of the run these answers came from, copied into ``evaluation.json`` so
    the report reads the evaluation alone: the mixture's manifest and the training metrics ({} where the
    answers have none: an untuned model, answers evaluated on their own)."""
    found = {"mixture": manifest_file(inputs["mixture"]) if "mixture" in inputs else None,
             "training": metrics_file(inputs["weights"]) if "weights" in inputs else None}  # fmt: skip
    return {name: read_json(path) if path and path.is_file() else {} for name, path in found.items()}


def task(
    cfg: EvaluateArgs,
    responses: Output,
    name: str,
    mixture: Output | None = None,
    weights: Output | None = None,
) -> Task:
    """``mixture`` and ``weights``: the grid point's mixture and training run, whose facts the evaluation
    carries on to the report."""
    version = judges.load_prompt(cfg.judge.prompt).fingerprint if cfg.judge.enabled else None
    if not cfg.judge.enabled:  # then no judge setting can change a result
        cfg = EvaluateArgs(cfg.langid, JudgeArgs(enabled=False), cfg.chrf)
    needs = {"evaluate.langid.model_path": Path(cfg.langid.model_path)} if cfg.langid.model_path else {}
    inputs = {"responses": responses} | {
        role: out for role, out in (("mixture", mixture), ("weights", weights)) if out
    }
    return Task("evaluate", name, EvaluateJob(cfg, version), inputs, slug=name.replace("/", "-"), needs=needs)


def evaluation_file(scores: Path) -> Path:
    """The ``evaluation.json`` written beside a ``scores.jsonl``."""
    return scores.parent / EVALUATION


def is_pipeline_check(cfg: EvaluateArgs) -> bool:
    """A judge that is the tiny embedded model only proves the pipeline runs; reports must say so."""
    return cfg.judge.enabled and cfg.judge.backend == "local" and cfg.judge.model.startswith("builtin:")


def _judge_subset(responses: list[Response], limit: int | None) -> list[Response]:
    if limit is None:
        return responses
    seen: Counter[tuple[str, str]] = Counter()
    chosen = []
    for r in sorted(responses, key=lambda r: r.id):
        seen[r.run, r.lang] += 1
        if seen[r.run, r.lang] <= limit:
            chosen.append(r)
    return chosen


def _judge(
    cfg: EvaluateArgs, responses: list[Response], cache: ContentCache, usage: Usage
) -> dict[str, judges.Judgement]:
    """Judge responses (a subset if configured); returns response id -> judgement."""
    prompt = judges.load_prompt(cfg.judge.prompt)
    wanted = {}
    for r in _judge_subset(responses, cfg.judge.max_per_language):
        key = judges.item_key(cfg.judge, prompt, r.prompt, r.response, r.lang)
        wanted[r.id] = judges.JudgeItem(key, r.prompt, r.response, r.lang)
    found = judges.judge_with_cache(cfg.judge, prompt, list(wanted.values()), cache, usage)
    return {rid: found[item.key] for rid, item in wanted.items()}


def final_score(verdict: str, judge_score: int | None) -> int | None:
    """The paper's rule, always: an answer that is not ``ok`` (wrong language, an echo, ...) scores 0 whether
    or not it was judged; an ``ok`` one keeps its judge score, or None when it has none (unjudged).

    >>> final_score("wrong-language", None), final_score("echo", 3), final_score("ok", 2), final_score("ok", None)
    (0, 0, 2, None)
    """
    if verdict != "ok":
        return 0
    return judge_score


def score_row(
    r: Response, verdict: str, lang: str, judgement: judges.Judgement | None, cfg: EvaluateArgs
) -> Score:
    score = judgement.score if judgement else None
    return Score(
        id=r.id, source_id=r.source_id, lang=r.lang, run=r.run, response=r.response, detected_lang=lang,
        verdict=verdict,
        lang_match=verdict == "ok",  # only a real answer in the prompt's language counts as consistent
        judge_score=score,
        judge_raw=judgement.raw if judgement and judgement.error is None else None,
        judge_error=judgement.error if judgement else None,
        final_score=final_score(verdict, score) if cfg.judge.enabled else None,  # no judge, no score
        chrf=chrf(r.response, r.reference) if cfg.chrf and r.reference else None,
        prompt=r.prompt, file_id=r.file_id,
    )  # fmt: skip


def judge_summary(cfg: EvaluateArgs, rows: list[Score], usage: Usage) -> dict:
    judged = [r for r in rows if r.judge_raw is not None]
    rated = [r for r in judged if r.judge_score is not None]
    return {
        "prompt": cfg.judge.prompt if cfg.judge.enabled else None,
        "backend": cfg.judge.backend,
        "model": cfg.judge.model,
        "judged": len(judged),
        "unparsable": len(judged) - len(rated),
        "failed": sum(r.judge_error is not None for r in rows),
        "pipeline_check_only": is_pipeline_check(cfg),
        "usage": usage.as_dict() | {"cost": cfg.judge.cost(usage)},
        # A judge that prefers long answers shows a positive correlation between score and length.
        "bias": {
            "score_length_pearson": pearson([len(r.response) for r in rated], [r.judge_score for r in rated])
        },
    }


def run(
    cfg: EvaluateArgs, responses_path: Path, out_dir: Path, judgements: Path, upstream: dict | None = None
) -> Outcome:
    """Score every response in ``responses_path``; writes ``scores.jsonl`` and ``evaluation.json`` (with
    ``upstream``, the facts of the run the report needs). The responses whose judgement failed are the
    outcome's failures: the next run asks for exactly those."""
    responses = records.read(Response, responses_path)
    found = fidelity.verdicts(
        [r.response for r in responses],
        [r.prompt for r in responses],
        [r.lang for r in responses],
        cfg.langid,
        [r.raw for r in responses],
    )
    usage = Usage()
    judged = {}
    if cfg.judge.enabled:
        with ContentCache(judgements) as cache:
            judged = _judge(cfg, responses, cache, usage)
    rows = [
        score_row(r, verdict, lang, judged.get(r.id), cfg)
        for r, (verdict, lang) in zip(responses, found, strict=True)
    ]
    write_json(
        out_dir / EVALUATION,
        {
            "judge": judge_summary(cfg, rows, usage),
            "langid": {
                "backend": cfg.langid.backend,
                "model_path": cfg.langid.model_path or "bundled",
                "min_letters": cfg.langid.min_letters,
                "confusable": cfg.langid.confusable,
                "confusable_policy": cfg.langid.confusable_policy,
            },
            "upstream": upstream or {"mixture": {}, "training": {}},
        },
    )
    write_jsonl(out_dir / SCORES, (r.to_dict() for r in rows))
    return Outcome(failed=[r.id for r in rows if r.judge_error is not None])
