"""A single-file HTML report: opens offline, plots embedded, with a small response browser."""

from __future__ import annotations

import base64
import json
import shutil
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from babeltune.io import atomic_write_text
from babeltune.report.aggregate import LARGE_GRID, Cell
from babeltune.report.columns import with_data

CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1400px;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem} .note{background:#fff4d6;border-left:4px solid #E69F00;padding:.6rem 1rem;margin:1rem 0}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:.9rem} th,td{border:1px solid #ccc;padding:.25rem .5rem}
th{background:#f2f2f2} td.num{text-align:right} td.best{font-weight:bold} tr.unseen td{background:#f7f7ff}
img{max-width:100%} pre{background:#f6f6f6;padding:1rem;overflow:auto;font-size:.8rem}
.resp{border:1px solid #ddd;border-radius:6px;padding:.5rem 1rem;margin:.5rem 0} .resp .meta{color:#555;font-size:.85rem}
#finding{border:2px solid #0072B2;border-radius:6px;padding:0 1rem;margin:1rem 0}
.bad{color:#D55E00;font-weight:bold} .side{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:.5rem}
td.ns{color:#777} #summary td,#finding td{white-space:nowrap}
#summary{font-size:.82rem} #summary th,#summary td{padding:.2rem .35rem}
.wide{overflow-x:auto;max-width:100%;background-repeat:no-repeat;background-attachment:local,local,scroll,scroll;
background-image:linear-gradient(to right,#fff 40%,rgba(255,255,255,0)),linear-gradient(to left,#fff 40%,rgba(255,255,255,0)),
linear-gradient(to right,rgba(0,0,0,.2),rgba(0,0,0,0)),linear-gradient(to left,rgba(0,0,0,.2),rgba(0,0,0,0));
background-position:left,right,left,right;background-size:30px 100%,30px 100%,12px 100%,12px 100%}
.scroll-cue{color:#555;font-size:.85rem;margin:.2rem 0} .left-out{color:#555;font-size:.9rem} em.empty{color:#999}
"""

INLINE_UP_TO = 5_000  # answers; a bigger grid's answers go to answers/NNNN.js, loaded one run at a time

# Answers arrive through babeltuneAnswers(run index, rows): from <script> blocks in the page, or from a run's
# answers/NNNN.js, which a <script src> can load from file:// where fetch() cannot.
REGISTER_JS = "const answersOf = new Map(); function babeltuneAnswers(i, rows) { answersOf.set(i, rows); }"

BROWSER_JS = """
const meta = JSON.parse(document.getElementById('answers-meta').textContent);
const total = meta.runs.reduce((n, r) => n + r.answers, 0);
const filters = {lang: document.getElementById('f-lang'), run: document.getElementById('f-run'),
                 prompt: document.getElementById('f-prompt')};
const keyOf = {lang: r => r.lang, run: r => r.run, prompt: r => r.source_id};
const options = {lang: meta.langs, run: meta.runs.map(r => r.name), prompt: meta.prompts};
for (const [name, sel] of Object.entries(filters)) {
  for (const v of options[name]) {
    const o = document.createElement('option'); o.value = v; o.textContent = v; sel.appendChild(o);
  }
  sel.onchange = () => { writeHash(); show(); };
}
function readHash() {  // #lang=es&run=...&prompt=... makes a view shareable
  const h = new URLSearchParams(location.hash.slice(1));
  for (const [name, sel] of Object.entries(filters)) if (h.get(name)) sel.value = h.get(name);
}
function writeHash() {
  const h = new URLSearchParams();
  for (const [name, sel] of Object.entries(filters)) if (sel.value) h.set(name, sel.value);
  history.replaceState(null, '', '#' + h.toString());
}
function load(runs) {  // the runs' answer files not loaded yet, each once
  return Promise.all(runs.filter(i => !answersOf.has(i)).map(i => new Promise((done, fail) => {
    const s = document.createElement('script'); s.src = meta.runs[i].file;
    s.onload = done; s.onerror = () => fail(new Error('cannot load ' + meta.runs[i].file));
    document.head.appendChild(s);
  })));
}
function card(r) {
  const div = document.createElement('div'); div.className = 'resp';
  const meta = document.createElement('div'); meta.className = 'meta' + (r.lang_match ? '' : ' bad');
  meta.textContent = `${r.run} · ${r.lang} · prompt ${r.source_id} · ${r.verdict} (detected ${r.detected_lang}) · judge ${r.judge_score ?? '–'} · chrF ${r.chrf ?? '–'}`;
  const q = document.createElement('p'); q.innerHTML = '<b>Prompt:</b> '; q.append(r.prompt);
  const a = document.createElement('p'); a.innerHTML = '<b>Answer:</b> ';
  if (r.response.trim()) a.append(r.response);
  else { const e = document.createElement('em'); e.className = 'empty'; e.textContent = '(empty: the model gave no answer)'; a.append(e); }
  div.append(meta, q, a);
  if (r.judge_raw) {
    const d = document.createElement('details'); const s = document.createElement('summary');
    s.textContent = 'judge rationale'; d.append(s, r.judge_raw); div.append(d);
  }
  return div;
}
async function show() {
  const box = document.getElementById('responses'), shown = document.getElementById('shown');
  box.replaceChildren();
  box.className = filters.prompt.value ? 'side' : '';  // one prompt: all runs side by side
  const one = meta.runs.findIndex(r => r.name === filters.run.value);
  const runs = one >= 0 ? [one] : meta.runs.map((_, i) => i);
  if (one < 0 && !filters.prompt.value && runs.some(i => !answersOf.has(i))) {
    shown.textContent = `${total} answers of ${meta.runs.length} runs, stored one file per run: choose a run, or a prompt to see every run's answer to it`;
    return;
  }
  shown.textContent = `loading the answers of ${runs.length} run(s)…`;
  try { await load(runs); } catch (e) { shown.textContent = e.message; return; }
  const rows = runs.flatMap(i => answersOf.get(i).map(r => ({...r, run: meta.runs[i].name})))
    .filter(r => Object.entries(filters).every(([n, sel]) => !sel.value || keyOf[n](r) === sel.value));
  shown.textContent = rows.length + ' of ' + total + ' answers';
  for (const r of rows.slice(0, 300)) box.appendChild(card(r));
}
readHash(); show();
for (const box of document.querySelectorAll('.wide')) {  // say so where a table is wider than the page
  if (box.scrollWidth > box.clientWidth + 2) {
    const cue = document.createElement('p'); cue.className = 'scroll-cue';
    cue.textContent = 'This table is wider than the page: scroll it sideways (shift + wheel) for the columns on the right →';
    box.before(cue);
  }
}
"""


def _js_call(i: int, rows: list[dict]) -> str:
    return f"babeltuneAnswers({i}, {json.dumps(rows, ensure_ascii=False)});\n"


def answers_block(answers: dict[str, list[dict]], out_dir: Path) -> str:
    """The response browser's data: inline for a small grid, else one ``answers/NNNN.js`` per run (the page
    stays small whatever the grid; a run's answers load when it is chosen). Rows need no ``run`` field."""
    folder = out_dir / "answers"
    shutil.rmtree(folder, ignore_errors=True)
    inline = sum(map(len, answers.values())) <= INLINE_UP_TO
    runs = [{"name": run, "answers": len(rows), "file": None if inline else f"answers/{i:04d}.js"}
            for i, (run, rows) in enumerate(answers.items())]  # fmt: skip
    every = [r for rows in answers.values() for r in rows]
    meta = {
        "runs": runs,
        "langs": sorted({r["lang"] for r in every}),
        "prompts": sorted({r["source_id"] for r in every}),
    }
    calls = "".join(_js_call(i, rows) for i, rows in enumerate(answers.values())) if inline else ""
    if not inline:
        folder.mkdir(parents=True)
        for i, rows in enumerate(answers.values()):
            atomic_write_text(folder / f"{i:04d}.js", _js_call(i, rows))
    return (f"<script type='application/json' id='answers-meta'>{_safe(json.dumps(meta, ensure_ascii=False))}</script>"
            f"<script>{REGISTER_JS}\n{_safe(calls)}</script>")  # fmt: skip


def _safe(text: str) -> str:
    """JSON or JS inside a <script> block: no "</script>" in it may end the block early."""
    return text.replace("</", "<\\/")


def _fmt(value: object, share: bool = False) -> str:
    """A value for a person: shares (fidelity and its interval) as percentages, one convention everywhere.

    >>> _fmt(0.4167, share=True), _fmt((0.25, 0.625), share=True), _fmt(2.5), _fmt(None)
    ('42%', '[25%, 62%]', '2.5', '–')
    """
    if value is None:
        return "–"
    if isinstance(value, dict):  # verdict shares: the ones that occur
        return "<br>".join(f"{escape(k)} {v:.0%}" for k, v in value.items() if v)
    if isinstance(value, tuple | list):
        return f"[{_fmt(value[0], share)}, {_fmt(value[1], share)}]"
    if share and isinstance(value, float | int):
        return f"{value:.0%}"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return escape(str(value))


def best_values(cells: list[Cell], columns: list) -> dict[tuple[str, str], object]:
    """(language, metric) -> the best value a run reached there, for the metrics where higher or lower is better,
    where more than one run answered in that language.

    >>> from babeltune.report.columns import COLUMNS
    >>> a = Cell("a", "es", True, 4, {"consistency": 0.5, "chrf": None, "robustness": 0.2, "score_mean": None})
    >>> b = Cell("b", "es", True, 4, {"consistency": 0.75, "chrf": None, "robustness": 0.4, "score_mean": None})
    >>> best_values([a, b], COLUMNS)
    {('es', 'consistency'): 0.75, ('es', 'robustness'): 0.2}
    """
    by_lang: dict[str, list[Cell]] = {}
    for c in cells:
        by_lang.setdefault(c.lang, []).append(c)
    out = {}
    for lang, group in by_lang.items():
        for col in (c for c in columns if c.higher_is_better is not None and len(group) > 1):
            values = [v for c in group if (v := getattr(c, col.key)) is not None]
            if values:
                out[lang, col.key] = max(values) if col.higher_is_better else min(values)
    return out


def table(cells: list[Cell]) -> str:
    """The per-run-and-language table, without the columns no cell has a value for (``summary_section``
    says which and why); in each language the best value of a metric with a better side is bold."""
    columns, _ = with_data(cells)
    best = best_values(cells, columns)
    head = "".join(f"<th>{escape(col.label)}</th>" for col in columns)
    body = []
    for c in cells:
        tds = "".join(
            f"<td class='num{' best' if best.get((c.lang, col.key), ...) == getattr(c, col.key) else ''}'>"
            f"{_fmt(getattr(c, col.key), col.share)}</td>"
            if col.key not in ("run", "lang")
            else f"<td>{_fmt(getattr(c, col.key))}</td>"
            for col in columns
        )
        label = "" if c.seen else " unseen"
        body.append(f"<tr class='cell{label}' data-lang='{escape(c.lang)}'>{tds}</tr>")
    page = f"<div class='wide'><table id='summary'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    runs = len({c.run for c in cells})
    if runs <= LARGE_GRID:
        return page
    # Folded: a browser lays out thousands of rows only when asked (the page opens 1.7x faster at 336 runs).
    return f"<details id='summary-fold'><summary>{len(cells)} rows: {runs} runs x languages</summary>{page}</details>"


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f"<img alt='{escape(path.stem)}' src='data:image/png;base64,{data}'>"


def paired_table(tests: list[dict]) -> str:
    """One collapsed block per language; a difference is marked only when it survives the Holm correction."""
    head = "".join(
        f"<th>{h}</th>"
        for h in ("run A", "run B", "metric", "prompts", "mean A", "mean B", "A - B", "p", "p (Holm)")
    )
    blocks = []
    for lang in dict.fromkeys(t["lang"] for t in tests):
        rows = [t for t in tests if t["lang"] == lang]
        body = "".join(
            f"<tr><td>{escape(t['run_a'])}</td><td>{escape(t['run_b'])}</td><td>{t['metric']}</td>"
            f"<td class='num'>{t['prompts']}</td><td class='num'>{_fmt(t['mean_a'])}</td><td class='num'>{_fmt(t['mean_b'])}</td>"
            f"<td class='num{'' if t['significant'] else ' ns'}'>{_fmt(t['difference'])}{'' if t['significant'] else ' (n.s.)'}</td>"
            f"<td class='num'>{_fmt(t['p'])}</td><td class='num'>{_fmt(t['p_holm'])}{escape(t['note'])}</td></tr>"
            for t in rows
        )  # fmt: skip
        marked = sum(t["significant"] for t in rows)
        blocks.append(f"<details><summary>{escape(lang)}: {len(rows)} pairs, {marked} significant after Holm</summary>"
                      f"<table class='paired'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></details>")  # fmt: skip
    return f"<div id='paired'>{''.join(blocks)}</div>"


def finding_section(result: dict, sentences: list[str]) -> str:
    """The experiment's answer, first: fidelity (and the judge's score, when a judge ran) per run pooled over
    language groups, then the comparisons."""
    if not result["runs"]:
        return ""
    judged = "score" in result["runs"][0]
    groups = [(label, key) for label, key in (("seen non-English", "seen_non_english"), ("unseen", "unseen"))
              if result[key]]  # fmt: skip
    head = (
        "<tr><th>run</th><th>regime</th>"
        + "".join(
            f"<th>{label}: fidelity</th><th>95% CI</th><th>answers</th>"
            + (f"<th>{label}: mean score</th><th>95% CI</th>" if judged else "")
            for label, _ in groups
        )
        + "</tr>"
    )

    def cells(r: dict, key: str) -> str:
        g = r[key]
        out = (f"<td class='num'>{_fmt(g['fidelity'], True)}</td><td class='num'>{_fmt(g['ci'], True)}</td>"
               f"<td class='num'>{g['answers']}</td>")  # fmt: skip
        if judged:
            sc = r["score"][key]
            out += f"<td class='num'>{_fmt(sc['score'])}</td><td class='num'>{_fmt(sc['ci'])}</td>"
        return out

    body = "".join(
        f"<tr><td>{escape(r['run'])}</td><td>{escape(r['regime'])}</td>"
        + "".join(cells(r, key) for _, key in groups) + "</tr>"
        for r in result["runs"]
    )  # fmt: skip
    groups_said = (f"Seen non-English languages: {', '.join(result['seen_non_english']) or 'none'}; unseen: "
                   f"{', '.join(result['unseen']) or 'none'}. Fidelity = share of answers that are real answers in "
                   "the prompt's language (verdict ok)."
                   + (" Mean score = the judge's rating x (verdict ok), over the answers it rated." if judged else ""))  # fmt: skip
    said = (
        "".join(f"<li>{escape(s)}</li>" for s in sentences)
        or "<li>No comparison of the paper's kind in this grid.</li>"
    )
    return (f"<section id='finding'><h2>Finding</h2><p>{escape(groups_said)}</p><div class='wide'><table id='finding-table'>"
            f"<thead>{head}</thead><tbody>{body}</tbody></table></div><ul>{said}</ul></section>")  # fmt: skip


@dataclass
class Page:
    """What the report page shows, section by section."""

    title: str
    notes: list[str]
    finding: str  # the finding section's HTML
    cells: list[Cell]
    tests: list[dict]  # the paired tests
    plots: list[Path]  # PNG files, embedded
    budget: list[dict]  # one row per training run
    answers: str  # the response browser's data block (answers_block)
    settings: str  # YAML
    pairwise: list[dict] = field(default_factory=list)  # `babeltune compare` summaries


def notes_section(page: Page) -> str:
    return "".join(f"<div class='note'>{escape(n)}</div>" for n in page.notes) + page.finding


def summary_section(page: Page) -> str:
    return f"""<h2>Results per run and language</h2>
<p>Unseen languages (not in the training data) are shaded. Each answer gets a verdict: ok, wrong-language, mixed
(a line in another language), echo (mostly a copy of the prompt), template, too-short or empty; fidelity is the
share that are ok. Score = judge score x (verdict ok): an answer that is not ok scores 0 whether or not it was
judged; "over" says how many answers each mean runs over.</p>
{"".join(f"<p class='left-out'>{escape(line)}</p>" for line in with_data(page.cells)[1])}
{table(page.cells)}"""


def paired_section(page: Page) -> str:
    return f"""<h2>Paired differences between runs</h2>
<p>The comparisons the experiment asks (report.contrasts: by default the paper's, within each model and method:
downsampled multilingual vs English-only and vs multilingual in every language, the multilingual runs vs each
monolingual run in its own language), each by an exact (or 20,000-sample) paired permutation test over the
prompts both runs answered, none with fewer than 10 shared prompts; p-values Holm-adjusted across every
comparison of the same metric; n.s. = not significant at 0.05 after the adjustment.</p>
{paired_table(page.tests)}"""


def pairwise_section(page: Page) -> str:
    """What `babeltune compare` found: one run's answers against another's, judged in both orders."""
    if not page.pairwise:
        return ""
    keys = (
        "pairs",
        "a_wins",
        "b_wins",
        "ties",
        "inconsistent",
        "unparsable",
        "flip_rate",
        "first_position_win_rate",
    )
    head = "".join(f"<th>{h}</th>" for h in ("run A", "run B", "judge", "pairs", "A wins", "B wins", "ties",
                                             "inconsistent", "unparsable", "flip rate", "first-position wins"))  # fmt: skip
    body = "".join(
        f"<tr><td>{escape(s['a'])}</td><td>{escape(s['b'])}</td><td>{escape(str(s['judge']))}</td>"
        + "".join(f"<td class='num'>{_fmt(s['overall'].get(k))}</td>" for k in keys) + "</tr>"
        for s in page.pairwise
    )  # fmt: skip
    return f"""<h2>Pairwise judgements (babeltune compare)</h2>
<p>Each pair of answers judged twice, once in each order; a win counts only when both orders agree, a verdict that
flips with the order is inconsistent (the flip rate measures the judge's position bias).</p>
<div class='wide'><table id='pairwise'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"""


def plots_section(page: Page) -> str:
    return "<h2>Plots</h2>" + "".join(_img(p) for p in page.plots)


def budget_section(page: Page) -> str:
    rows = page.budget
    head = "".join(f"<th>{escape(k)}</th>" for k in rows[0]) if rows else ""
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row.values()) + "</tr>" for row in rows)
    return f"<h2>Training runs and budget</h2><table id='budget'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def responses_section(page: Page) -> str:
    return """<h2>Responses</h2>
<label>Language <select id="f-lang"><option value="">all</option></select></label>
<label>Run <select id="f-run"><option value="">all</option></select></label>
<label>Prompt <select id="f-prompt"><option value="">all</option></select></label>
<span id="shown"></span>
<div id="responses"></div>"""


def settings_section(page: Page) -> str:
    return f"<h2>Settings</h2><pre>{escape(page.settings)}</pre>"


# The page, top to bottom: a new section is a function of the Page added here.
SECTIONS = [notes_section, summary_section, paired_section, pairwise_section, plots_section, budget_section,
            responses_section, settings_section]  # fmt: skip


def render(page: Page) -> str:
    body = "\n".join(section(page) for section in SECTIONS)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(page.title)}</title><style>{CSS}</style></head>
<body>
<h1>{escape(page.title)}</h1>
{body}
{page.answers}
<script>{BROWSER_JS}</script>
</body></html>
"""
