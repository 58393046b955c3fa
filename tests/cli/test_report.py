"""The HTML report in a real browser: headless Chromium (Debian's package; .ci/run installs it)."""

import re
import shutil
import subprocess
import tempfile

import pytest

from babeltune.config import ReportArgs
from babeltune.report import run
from helpers.report import evaluated_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)


FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def render(url: str, width: int = 1400) -> tuple[str, str]:
    """The DOM after the page's scripts ran in a window ``width`` pixels wide, and the browser's console log."""
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},900", "--enable-logging=stderr",
             "--v=0", "--dump-dom", url],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = "\n".join(line for line in proc.stderr.splitlines() if ":CONSOLE" in line)
    return proc.stdout, console


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    results = [evaluated_run(tmp, "en-only", match_es=False), evaluated_run(tmp, "multi-down", match_es=True)]
    return run(
        ReportArgs(title="Browser test"),
        results,
        {"en", "es"},
        "name: t\n",
        tmp / "report",
        ["en", "es", "bn"],
    )


@pytest.fixture(scope="module")
def large_page(tmp_path_factory):
    """A grid whose answers do not fit in the page: one answers/NNNN.js per run, loaded when asked for."""
    from babeltune.report import html

    tmp = tmp_path_factory.mktemp("large")
    results = [evaluated_run(tmp, "en-only", match_es=False), evaluated_run(tmp, "multi-down", match_es=True)]
    inline, html.INLINE_UP_TO = html.INLINE_UP_TO, 10
    try:
        return run(ReportArgs(title="Large"), results, {"en", "es"}, "", tmp / "report", ["en", "es", "bn"])
    finally:
        html.INLINE_UP_TO = inline


def test_page_loads_without_console_errors_and_shows_every_row(page):
    dom, console = render(page.as_uri())
    assert "Uncaught" not in console and "Error" not in console, console
    assert len(re.findall(r'<tr class="cell', dom)) == 6  # 2 runs x 3 languages
    assert len(re.findall(r'<div class="resp">', dom)) == 24  # every answer listed
    assert "24 of 24 answers" in dom
    assert dom.count('<img alt="') >= 4  # the plots are embedded


def test_a_filter_changes_what_is_shown(page):
    dom, console = render(page.as_uri() + "#lang=es&run=en-only")
    assert "Uncaught" not in console, console
    assert "4 of 24 answers" in dom and len(re.findall(r'<div class="resp">', dom)) == 4
    assert "answer 0" in dom and "multi-down · es" not in dom
    side, _ = render(page.as_uri() + "#prompt=p1")
    assert '<div id="responses" class="side">' in side and "6 of 24 answers" in side  # one prompt, all runs


def test_a_large_grids_answers_load_one_run_at_a_time(large_page):
    files = sorted(p.name for p in (large_page.parent / "answers").iterdir())
    assert files == ["0000.js", "0001.js"] and "answer 3" not in large_page.read_text()
    dom, console = render(large_page.as_uri())
    assert "Uncaught" not in console, console
    assert "24 answers of 2 runs, stored one file per run: choose a run" in dom and 'class="resp"' not in dom
    dom, console = render(large_page.as_uri() + "#run=multi-down&lang=es")
    assert "Uncaught" not in console, console
    assert "4 of 24 answers" in dom and len(re.findall(r'<div class="resp">', dom)) == 4
    assert "multi-down · es" in dom and "judge rationale" in dom  # the judge's text travels with the answer
    side, _ = render(large_page.as_uri() + "#prompt=p1")  # one prompt: every run's file is loaded
    assert "6 of 24 answers" in side and "en-only · bn" in side and "multi-down · bn" in side


def test_a_table_wider_than_the_window_says_so_and_an_empty_answer_shows_as_empty(tmp_path):
    """Issue 26, item 6: at 1400 px the tables fit; in a narrow window the wide ones scroll inside their box
    with a line saying so; an empty answer reads "(empty: ...)", not a bare "Answer:"."""
    from babeltune.io import read_jsonl, write_jsonl

    results = [
        evaluated_run(tmp_path, "en-only", match_es=False),
        evaluated_run(tmp_path, "multi-down", match_es=True),
    ]
    rows = read_jsonl(results[0].scores)
    rows[0] |= {"response": "", "verdict": "empty", "lang_match": False, "final_score": 0}
    write_jsonl(results[0].scores, rows)
    page = run(ReportArgs(title="Wide"), results, {"en", "es"}, "", tmp_path / "report", ["en", "es", "bn"])
    wide, console = render(page.as_uri() + "#run=en-only", width=1400)
    assert "Uncaught" not in console, console
    assert '<p class="scroll-cue">' not in wide
    assert "(empty: the model gave no answer)" in wide and "<b>Answer:</b> answer 1" in wide
    narrow, _ = render(page.as_uri(), width=700)
    assert narrow.count('<p class="scroll-cue">This table is wider than the page') >= 1
