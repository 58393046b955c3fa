"""Pairwise judging of two runs on the same prompts, in both orders, with position-bias figures.

Each prompt is judged as (A = run a, B = run b) and again swapped. A verdict that changes with the order
is a flip; the first-position win rate is the share of non-tie verdicts that chose whichever answer was
shown first (0.5 for an unbiased judge).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from babeltune.content_cache import ContentCache
from babeltune.evaluate import judge as judges
from babeltune.evaluate.judge import JudgeArgs
from babeltune.io import write_json, write_jsonl
from babeltune.records import Response
from babeltune.retry import Usage


def outcome(first: str | None, swapped: str | None) -> str | None:
    """Winner from the verdicts of both orders: "a", "b", "tie", "inconsistent" or None (unparsable).

    >>> outcome("A", "B"), outcome("B", "A"), outcome("tie", "tie"), outcome("A", "A"), outcome(None, "A")
    ('a', 'b', 'tie', 'inconsistent', None)
    """
    if first is None or swapped is None:
        return None
    as_a = {"A": "a", "B": "b", "tie": "tie"}[first]
    as_swapped = {"A": "b", "B": "a", "tie": "tie"}[swapped]
    return as_a if as_a == as_swapped else "inconsistent"


def summarise(rows: list[dict]) -> dict:
    """Wins, ties, flip rate and first-position win rate over judged pairs.

    >>> s = summarise([{"first": "A", "swapped": "B", "outcome": "a"}, {"first": "A", "swapped": "A", "outcome": "inconsistent"}])
    >>> s["a_wins"], s["flip_rate"], s["first_position_win_rate"]
    (1, 0.5, 0.75)
    """
    parsed = [r for r in rows if r["outcome"] is not None]
    counts = Counter(r["outcome"] for r in parsed)
    verdicts = [v for r in parsed for v in (r["first"], r["swapped"]) if v != "tie"]
    return {
        "pairs": len(rows),
        "unparsable": len(rows) - len(parsed),
        "a_wins": counts["a"],
        "b_wins": counts["b"],
        "ties": counts["tie"],
        "inconsistent": counts["inconsistent"],  # the verdict changed with the answers' order: no winner
        "flip_rate": round(counts["inconsistent"] / len(parsed), 3) if parsed else None,
        "first_position_win_rate": round(sum(v == "A" for v in verdicts) / len(verdicts), 3)
        if verdicts
        else None,
    }


def run(
    cfg: JudgeArgs,
    a: list[Response],
    b: list[Response],
    names: tuple[str, str],
    out_dir: Path,
    judgements: Path,
) -> Path:
    """Judge run ``a`` against run ``b`` on the prompts both answered; writes pairwise.jsonl and a summary.
    ``judgements`` is the run's judgement cache."""
    prompt = judges.load_prompt("pairwise")
    b_by_id = {r.id: r for r in b}
    seen: Counter[str] = Counter()
    pairs = []
    for ra in sorted(a, key=lambda r: r.id):
        seen[ra.lang] += 1
        if ra.id in b_by_id and (cfg.max_per_language is None or seen[ra.lang] <= cfg.max_per_language):
            pairs.append((ra, b_by_id[ra.id]))
    items = {}
    for ra, rb in pairs:
        for order, (x, y) in (("first", (ra, rb)), ("swapped", (rb, ra))):
            key = judges.item_key(cfg, prompt, ra.prompt, x.response, ra.lang, y.response)
            items[ra.id, order] = judges.JudgeItem(key, ra.prompt, x.response, ra.lang, y.response)
    usage = Usage()
    with ContentCache(judgements) as cache:
        found = judges.judge_with_cache(cfg, prompt, list(items.values()), cache, usage)
    verdicts = {key: j.score for key, j in found.items()}
    rows = []
    for ra, _ in pairs:
        first, swapped = (verdicts.get(items[ra.id, o].key) for o in ("first", "swapped"))
        rows.append(
            {
                "id": ra.id,
                "lang": ra.lang,
                "first": first,
                "swapped": swapped,
                "outcome": outcome(first, swapped),
            }
        )
    by_lang: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_lang[r["lang"]].append(r)
    write_jsonl(out_dir / "pairwise.jsonl", rows)
    summary = {"a": names[0], "b": names[1], "judge": cfg.model, "overall": summarise(rows),
               "per_language": {lang: summarise(rs) for lang, rs in by_lang.items()}, "usage": usage.as_dict()}  # fmt: skip
    path = out_dir / "pairwise_summary.json"
    write_json(path, summary)
    return path


def print_summary(path: Path) -> None:
    from rich.console import Console

    from babeltune.io import read_json

    summary = read_json(path)
    o = summary["overall"]
    Console(soft_wrap=True).print(
        f"{summary['a']} vs {summary['b']} (judge {summary['judge']}), {o['pairs']} pairs: {o['a_wins']} : "
        f"{o['b_wins']}, {o['ties']} ties, {o.get('inconsistent', 0)} inconsistent (the verdict flipped with the "
        f"order), {o['unparsable']} unparsable; flip rate {o['flip_rate']}, first-position win rate "
        f"{o['first_position_win_rate']}; details in {path.parent}"
    )
