"""A single-file HTML report: opens offline, plots embedded, with a small response browser."""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path

from babeltune.report.aggregate import Cell

CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem} .note{background:#fff4d6;border-left:4px solid #E69F00;padding:.6rem 1rem;margin:1rem 0}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:.9rem} th,td{border:1px solid #ccc;padding:.25rem .5rem}
th{background:#f2f2f2} td.num{text-align:right} tr.unseen td{background:#f7f7ff}
img{max-width:100%} pre{background:#f6f6f6;padding:1rem;overflow:auto;font-size:.8rem}
.resp{border:1px solid #ddd;border-radius:6px;padding:.5rem 1rem;margin:.5rem 0} .resp .meta{color:#555;font-size:.85rem}
.bad{color:#D55E00;font-weight:bold}
"""

BROWSER_JS = """
const data = JSON.parse(document.getElementById('responses-data').textContent);
const langSel = document.getElementById('f-lang'), runSel = document.getElementById('f-run');
function fill(sel, values){ for (const v of values){ const o=document.createElement('option'); o.value=v; o.textContent=v; sel.appendChild(o);} }
fill(langSel, [...new Set(data.map(r => r.lang))]); fill(runSel, [...new Set(data.map(r => r.run))]);
function show(){
  const box = document.getElementById('responses'); box.replaceChildren();
  const rows = data.filter(r => (!langSel.value || r.lang === langSel.value) && (!runSel.value || r.run === runSel.value));
  document.getElementById('shown').textContent = rows.length + ' of ' + data.length + ' answers';
  for (const r of rows.slice(0, 300)){
    const div = document.createElement('div'); div.className = 'resp';
    const meta = document.createElement('div'); meta.className = 'meta';
    meta.textContent = `${r.run} · ${r.lang} · prompt ${r.source_id} · detected ${r.detected_lang} · judge ${r.judge_score ?? '–'} · chrF ${r.chrf ?? '–'}`;
    if (!r.lang_match) meta.classList.add('bad');
    const q = document.createElement('p'); q.innerHTML = '<b>Prompt:</b> '; q.append(r.prompt);
    const a = document.createElement('p'); a.innerHTML = '<b>Answer:</b> '; a.append(r.response);
    div.append(meta, q, a); box.appendChild(div);
  }
}
langSel.onchange = show; runSel.onchange = show; show();
"""

COLUMNS = [
    ("run", "run"),
    ("lang", "language"),
    ("n", "prompts"),
    ("consistency", "language consistency"),
    ("chrf", "chrF"),
    ("judged", "judged"),
    ("unparsable", "unparsable"),
    ("score_sum", "score sum (judge x match)"),
    ("score_mean", "mean score"),
    ("judge_mean", "mean judge before LID"),
    ("robustness", "robustness (before - after)"),
]


def _fmt(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return escape(str(value))


def table(cells: list[Cell]) -> str:
    head = "".join(f"<th>{escape(label)}</th>" for _, label in COLUMNS)
    body = []
    for c in cells:
        tds = "".join(
            f"<td class='num'>{_fmt(getattr(c, k))}</td>"
            if k not in ("run", "lang")
            else f"<td>{_fmt(getattr(c, k))}</td>"
            for k, _ in COLUMNS
        )
        label = "" if c.seen else " unseen"
        body.append(f"<tr class='cell{label}' data-lang='{escape(c.lang)}'>{tds}</tr>")
    return f"<table id='summary'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f"<img alt='{escape(path.stem)}' src='data:image/png;base64,{data}'>"


def render(
    title: str,
    cells: list[Cell],
    plots: list[Path],
    budget_rows: list[dict],
    notes: list[str],
    settings_yaml: str,
    responses: list[dict],
) -> str:
    budget_head = "".join(f"<th>{escape(k)}</th>" for k in budget_rows[0]) if budget_rows else ""
    budget_body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row.values()) + "</tr>" for row in budget_rows
    )
    payload = json.dumps(responses, ensure_ascii=False).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title><style>{CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
{"".join(f"<div class='note'>{escape(n)}</div>" for n in notes)}
<h2>Results per run and language</h2>
<p>Unseen languages (not in the training data) are shaded. Score = judge score x language match (an answer in the
wrong language scores 0); the paper sums it over prompts.</p>
{table(cells)}
<h2>Plots</h2>
{"".join(_img(p) for p in plots)}
<h2>Training runs and budget</h2>
<table id="budget"><thead><tr>{budget_head}</tr></thead><tbody>{budget_body}</tbody></table>
<h2>Responses</h2>
<label>Language <select id="f-lang"><option value="">all</option></select></label>
<label>Run <select id="f-run"><option value="">all</option></select></label>
<span id="shown"></span>
<div id="responses"></div>
<h2>Settings</h2>
<pre>{escape(settings_yaml)}</pre>
<script type="application/json" id="responses-data">{payload}</script>
<script>{BROWSER_JS}</script>
</body></html>
"""
