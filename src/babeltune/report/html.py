"""A single-file HTML report: opens offline, plots embedded, with a small response browser."""

from __future__ import annotations

import base64
import json
import shutil
from dataclasses import dataclass
from html import escape
from pathlib import Path

from babeltune.io import atomic_write_text
from babeltune.report.aggregate import LARGE_GRID, Cell
from babeltune.report.columns import COLUMNS

CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1400px;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem} .note{background:#fff4d6;border-left:4px solid #E69F00;padding:.6rem 1rem;margin:1rem 0}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:.9rem} th,td{border:1px solid #ccc;padding:.25rem .5rem}
th{background:#f2f2f2} td.num{text-align:right} tr.unseen td{background:#f7f7ff}
img{max-width:100%} pre{background:#f6f6f6;padding:1rem;overflow:auto;font-size:.8rem}
.resp{border:1px solid #ddd;border-radius:6px;padding:.5rem 1rem;margin:.5rem 0} .resp .meta{color:#555;font-size:.85rem}
#finding{border:2px solid #0072B2;border-radius:6px;padding:0 1rem;margin:1rem 0}
.bad{color:#D55E00;font-weight:bold} .side{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:.5rem}
td.ns{color:#777} #summary td,#finding td{white-space:nowrap}
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
  const a = document.createElement('p'); a.innerHTML = '<b>Answer:</b> '; a.append(r.response);
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


def table(cells: list[Cell]) -> str:
    head = "".join(f"<th>{escape(col.label)}</th>" for col in COLUMNS)
    body = []
    for c in cells:
        tds = "".join(
            f"<td class='num'>{_fmt(getattr(c, col.key), col.share)}</td>"
            if col.key not in ("run", "lang")
            else f"<td>{_fmt(getattr(c, col.key))}</td>"
            for col in COLUMNS
        )
        label = "" if c.seen else " unseen"
        body.append(f"<tr class='cell{label}' data-lang='{escape(c.lang)}'>{tds}</tr>")
    page = f"<div style='overflow-x:auto'><table id='summary'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
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
    """The experiment's answer, first: fidelity per run pooled over language groups, then the comparisons."""
    if not result["runs"]:
        return ""
    head = ("<tr><th>run</th><th>regime</th><th>seen non-English: fidelity</th><th>95% CI</th><th>answers</th>"
            "<th>unseen: fidelity</th><th>95% CI</th><th>answers</th></tr>")  # fmt: skip
    body = "".join(
        f"<tr><td>{escape(r['run'])}</td><td>{escape(r['regime'])}</td>"
        + "".join(f"<td class='num'>{_fmt(g['fidelity'], True)}</td><td class='num'>{_fmt(g['ci'], True)}</td>"
                  f"<td class='num'>{g['answers']}</td>" for g in (r["seen_non_english"], r["unseen"]))
        + "</tr>"
        for r in result["runs"]
    )  # fmt: skip
    groups = (f"Seen non-English languages: {', '.join(result['seen_non_english']) or 'none'}; unseen: "
              f"{', '.join(result['unseen']) or 'none'}. Fidelity = share of answers that are real answers in the "
              "prompt's language (verdict ok).")  # fmt: skip
    said = (
        "".join(f"<li>{escape(s)}</li>" for s in sentences)
        or "<li>No comparison of the paper's kind in this grid.</li>"
    )
    return (f"<section id='finding'><h2>Finding</h2><p>{escape(groups)}</p><table id='finding-table'>"
            f"<thead>{head}</thead><tbody>{body}</tbody></table><ul>{said}</ul></section>")  # fmt: skip


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


def notes_section(page: Page) -> str:
    return "".join(f"<div class='note'>{escape(n)}</div>" for n in page.notes) + page.finding


def summary_section(page: Page) -> str:
    return f"""<h2>Results per run and language</h2>
<p>Unseen languages (not in the training data) are shaded. Each answer gets a verdict: ok, wrong-language, mixed
(a line in another language), echo (mostly a copy of the prompt), template, too-short or empty; fidelity is the
share that are ok. Score = judge score x (verdict ok): an answer that is not ok scores 0 whether or not it was
judged; "over" says how many answers each mean runs over.</p>
{table(page.cells)}"""


def paired_section(page: Page) -> str:
    return f"""<h2>Paired differences between runs</h2>
<p>The comparisons the experiment asks (report.contrasts: by default the paper's, within each model and method:
downsampled multilingual vs English-only and vs multilingual in every language, the multilingual runs vs each
monolingual run in its own language), each by an exact (or 20,000-sample) paired permutation test over the
prompts both runs answered, none with fewer than 10 shared prompts; p-values Holm-adjusted across every
comparison of the same metric; n.s. = not significant at 0.05 after the adjustment.</p>
{paired_table(page.tests)}"""


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
SECTIONS = [notes_section, summary_section, paired_section, plots_section, budget_section, responses_section,
            settings_section]  # fmt: skip


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
