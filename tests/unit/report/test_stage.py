"""The report stage in process on made-up scores: tables, figures, paired tests, contrasts, seeds, sweeps,
and metrics as entries."""

import csv

from babeltune.config import ReportArgs
from babeltune.io import read_json
from babeltune.report import run
from helpers.report import evaluated_run


def test_report_tables_plots_and_page(tmp_path):
    results = [
        evaluated_run(tmp_path, "en-only", match_es=False),
        evaluated_run(tmp_path, "multi-down", match_es=True),
    ]
    page = run(
        ReportArgs(title="T"), results, {"en", "es"}, "name: t\n", tmp_path / "report", ["bn", "en", "es"]
    )
    rows = list(csv.DictReader((tmp_path / "report" / "summary.csv").open()))
    assert [r["lang"] for r in rows] == ["bn", "en", "es"] * 2  # the configured language order
    es = {r["run"]: r for r in rows if r["lang"] == "es"}
    assert float(es["en-only"]["consistency"]) == 0.0 and float(es["multi-down"]["consistency"]) == 1.0
    assert float(es["en-only"]["score_sum"]) == 0 and float(es["multi-down"]["score_sum"]) == 6
    assert float(es["en-only"]["robustness"]) == 2.0 and int(es["en-only"]["unparsable"]) == 1
    assert {r["seen"] for r in rows if r["lang"] == "bn"} == {"False"}
    for name in ("consistency", "chrf", "score", "robustness"):
        assert (tmp_path / "report" / f"{name}.png").stat().st_size > 5000
        assert (tmp_path / "report" / f"{name}.svg").exists()
    html = page.read_text()
    assert html.count("<tr class='cell") == 6 and "pipeline check, not a meaningful judge" in html
    assert "data:image/png;base64," in html and "question 3 in bn" in html
    md = (tmp_path / "report" / "summary.md").read_text()
    assert "bn (unseen)" in md and md.count("\n") == 8
    assert not list((tmp_path / "report").glob("*_by_size.png"))  # one model size: no size axis


def test_scores_against_model_size_are_plotted_per_regime_and_family(tmp_path):
    from babeltune import records
    from babeltune.records import Score
    from babeltune.report.aggregate import cells
    from babeltune.report.stage import model_sizes, size_points

    grid = [("bloom-560m", 559e6, False), ("bloom-7b1", 7.07e9, True), ("pythia-410m", 405e6, True)]
    results = [
        evaluated_run(tmp_path, f"{model}/lora/multi", match, int(size), model, "lora")
        for model, size, match in grid
    ]
    page = run(ReportArgs(title="T"), results, {"en", "es"}, "", tmp_path / "report", ["en", "es", "bn"])
    table = cells({r.name: records.read(Score, r.scores) for r in results}, {"en", "es"})
    sizes = model_sizes(results)
    points = {
        (p.family, p.parameters, p.seen): p.value for p in size_points(results, sizes, table, "consistency")
    }
    assert points == {
        ("bloom", 559_000_000, True): 0.5,  # en matches, es does not
        ("bloom", 559_000_000, False): 1.0,
        ("bloom", 7_070_000_000, True): 1.0,
        ("bloom", 7_070_000_000, False): 1.0,
    }  # pythia has one size here: no line to draw, so no points
    assert {p.series for p in size_points(results, sizes, table, "score_mean")} == {"x (lora)"}
    robustness = {
        (p.family, p.parameters, p.seen): p.value for p in size_points(results, sizes, table, "robustness")
    }
    assert robustness[("bloom", 559_000_000, True)] == 1.0  # es answers judged 2, scored 0: mean 2 -> 1
    assert robustness[("bloom", 7_070_000_000, True)] == 0.0
    for name in ("consistency_by_size", "score_mean_by_size", "robustness_by_size"):
        assert (tmp_path / "report" / f"{name}.png").stat().st_size > 5000
        assert (tmp_path / "report" / f"{name}.svg").exists()
    assert page.read_text().count("data:image/png;base64,") == 9  # the verdict shares too


def test_no_significance_claims_below_the_minimum_and_holm_adjusted(tmp_path):
    from babeltune.records import Score
    from babeltune.report.aggregate import paired_tests

    def rows(run, oks):
        return [Score(f"p{k}:es", f"p{k}", "es", run, "", "es", "ok" if ok else "wrong-language", bool(ok), None, None,
                      None, None) for k, ok in enumerate(oks)]  # fmt: skip

    few = paired_tests({"a": rows("a", [1, 1, 1]), "b": rows("b", [0, 0, 0])})
    assert few[0]["p"] is None and few[0]["significant"] is False and "fewer than 10" in few[0]["note"]
    many = paired_tests(
        {"a": rows("a", [1] * 14), "b": rows("b", [0] * 14), "c": rows("c", [1] * 7 + [0] * 7)}
    )
    by_pair = {(t["run_a"], t["run_b"]): t for t in many}
    assert by_pair["a", "b"]["p"] < 0.001 and by_pair["a", "b"]["significant"]
    assert by_pair["a", "c"]["p"] == 0.0156  # exact: 2 of the 2**7 sign flips are as extreme
    assert by_pair["a", "c"]["p_holm"] == 0.0312  # the second smallest of three p-values, times 2
    assert by_pair["b", "c"]["p_holm"] == 0.0312 and by_pair["b", "c"]["significant"]


def test_paired_tests_are_the_papers_contrasts_unless_every_pair_is_asked(tmp_path):
    """Within each model and method: downsampled vs English-only and vs multilingual in every language, the
    multilingual runs vs each monolingual run in its own language; never across models or methods."""
    grid = [("en-only", "english-only", ("en",)), ("multi", "multilingual", ("en", "es")),
            ("multi-down", "multilingual-downsampled", ("en", "es")), ("mono-es", "monolingual", ("es",))]  # fmt: skip
    results = [
        evaluated_run(tmp_path, f"{model}/lora/{name}", name != "en-only", None, model, "lora", regime, langs)
        for model in ("m1", "m2")
        for name, regime, langs in grid
    ]
    run(ReportArgs(title="T"), results, {"en", "es"}, "", tmp_path / "paper", ["en", "es", "bn"])
    rows = list(csv.DictReader((tmp_path / "paper" / "paired.csv").open()))
    pairs = {
        (r["run_a"].split("/")[0], r["run_a"].split("/")[-1], r["run_b"].split("/")[-1], r["lang"])
        for r in rows
    }
    expected = {(m, "multi-down", other, lang) for m in ("m1", "m2") for other in ("en-only", "multi")
                for lang in ("en", "es", "bn")}  # fmt: skip
    expected |= {(m, base, "mono-es", "es") for m in ("m1", "m2") for base in ("multi-down", "multi")}
    assert len(rows) == len(pairs) == len(expected) == 16 and pairs == expected
    assert all(r["run_a"].split("/")[0] == r["run_b"].split("/")[0] for r in rows)
    es = {(r["run_a"], r["run_b"]): r for r in rows if r["lang"] == "es"}
    assert float(es["m1/lora/multi-down", "m1/lora/en-only"]["difference"]) == 1.0  # es answered in es vs not

    run(
        ReportArgs(title="T", contrasts="all"),
        results,
        {"en", "es"},
        "",
        tmp_path / "all",
        ["en", "es", "bn"],
    )
    every = list(csv.DictReader((tmp_path / "all" / "paired.csv").open()))
    assert len(every) == 28 * 3  # C(8, 2) pairs of runs in 3 languages


def test_a_large_grid_plots_mixtures_and_folds_its_tables(tmp_path):
    from babeltune.report.aggregate import LARGE_GRID

    results = [evaluated_run(tmp_path, f"m{i}/lora/{mixture}", mixture == "multi-down", None, f"m{i}", "lora")
               for i in range(LARGE_GRID // 2 + 1) for mixture in ("en-only", "multi-down")]  # fmt: skip
    page = run(ReportArgs(title="T"), results, {"en", "es"}, "", tmp_path / "report", ["en", "es", "bn"])
    html = page.read_text()
    assert f"{len(results)} runs: the per-language plots show each mixture" in html
    assert "<details id='summary-fold'>" in html and html.count("<tr class='cell") == 3 * len(results)
    assert len(list(csv.DictReader((tmp_path / "report" / "summary.csv").open()))) == 3 * len(results)


def test_a_difference_is_significant_across_seeds_only_when_the_seeds_agree():
    """Three seeds per regime: the same effect in each is significant; one seed carrying it alone is not,
    though the mean difference over seeds is as large."""
    from babeltune.records import Score
    from babeltune.report import finding
    from babeltune.report.contrasts import DOWNSAMPLED, ENGLISH, RunInfo

    def run(name, share):
        return [Score(f"p{k}:es", f"p{k}", "es", name, "", "es", "ok" if k < share * 40 else "wrong-language",
                      k < share * 40, None, None, None, None) for k in range(40)]  # fmt: skip

    def grid(shares):  # per seed: (downsampled's share ok, English-only's)
        scores, runs = {}, []
        for seed, (down, en) in enumerate(shares):
            for mixture, regime, share in (("multi-down", DOWNSAMPLED, down), ("en-only", ENGLISH, en)):
                name = f"m/lora/seed={seed}/{mixture}"
                scores[name] = run(name, share)
                runs.append(RunInfo(name, regime, "m/lora", ("en", "es"), seed))
        (c,) = finding.finding(scores, runs, {"en", "es"}, ["en", "es"])["comparisons"]
        return c

    agree = grid([(0.8, 0.45), (0.75, 0.4), (0.8, 0.4)])
    alone = grid([(1.0, 0.0), (0.5, 0.5), (0.5, 0.5)])
    assert agree["seeds"] == alone["seeds"] == 3 and agree["answers"] == 120
    assert agree["significant"] and agree["ci"][0] > 0 and agree["verdict"] == "significant across seeds"
    assert alone["difference"] == round(1 / 3, 3) and alone["per_seed"] == [1.0, 0.0, 0.0]
    assert not alone["significant"] and alone["ci"][0] <= 0 < alone["ci"][1]
    assert "over 3 seeds and their prompts" in finding.sentences({"comparisons": [alone]})[0]


def test_a_swept_setting_gets_its_figure_and_summary_column(tmp_path):
    from dataclasses import replace

    results = [replace(evaluated_run(tmp_path, f"m/lora/learning_rate={lr}/{mixture}", mixture == "multi-down", None, "m",
                            "lora", regime), axes={"train.learning_rate": lr})
               for lr in (0.01, 0.02) for mixture, regime in (("en-only", "english-only"),
                                                               ("multi-down", "multilingual-downsampled"))]  # fmt: skip
    run(ReportArgs(title="T"), results, {"en", "es"}, "", tmp_path / "report", ["en", "es", "bn"])
    assert (tmp_path / "report" / "by_train_learning_rate.png").stat().st_size > 5000
    rows = list(csv.DictReader((tmp_path / "report" / "summary.csv").open()))
    assert {r["train.learning_rate"] for r in rows} == {"0.01", "0.02"}
    comparisons = read_json(tmp_path / "report" / "finding.json")["comparisons"]
    assert {(c["a"], c["b"]) for c in comparisons} == {
        (f"m/lora/learning_rate={lr}/multi-down", f"m/lora/learning_rate={lr}/en-only") for lr in (0.01, 0.02)
    }  # regimes compared within each learning rate, never across
    along = read_json(tmp_path / "report" / "finding.json")["along"]
    assert {(c["setting"], c["a"], c["b"], c["on"]) for c in along} == {
        ("train.learning_rate", f"m/lora/learning_rate=0.01/{m}", f"m/lora/learning_rate=0.02/{m}", on)
        for m in ("en-only", "multi-down")
        for on in ("seen non-English languages", "unseen languages")
    }  # each learning rate against the next, per mixture, pooled per language family
    assert all(c["verdict"] == "not tested: fewer than 10 shared answers" for c in along)  # 4 prompts here
    paired = list(csv.DictReader((tmp_path / "report" / "paired.csv").open()))
    along = {(r["run_a"], r["run_b"]) for r in paired if "0.01" in r["run_a"] and "0.02" in r["run_b"]}
    assert along == {
        (f"m/lora/learning_rate=0.01/{m}", f"m/lora/learning_rate=0.02/{m}")
        for m in ("en-only", "multi-down")
    }


def test_seeds_show_their_spread_and_the_axis_figure_its_intervals(tmp_path, monkeypatch):
    """Issue 24: with several seeds each cell gives fidelity's range over them beside the interval over
    prompts; the figure along a swept setting draws 95 % intervals; one seed per point says nothing of it."""
    from dataclasses import replace

    from babeltune.report import plots

    drawn = []
    monkeypatch.setattr(plots, "by_axis", lambda points, *a: drawn.extend(points) or [])
    results = [replace(evaluated_run(tmp_path, f"m/lora/r={r}/seed={seed}/multi-down", seed == 1, None, "m", "lora",
                            "multilingual-downsampled"), axes={"lora.r": r, "train.seed": seed})
               for r in (8, 64) for seed in (0, 1)]  # fmt: skip
    run(ReportArgs(title="T"), results, {"en", "es"}, "", tmp_path / "report", ["en", "es", "bn"])
    rows = list(csv.DictReader((tmp_path / "report" / "summary.csv").open()))
    es = {r["run"]: r["seed_range"] for r in rows if r["lang"] == "es"}
    assert set(es.values()) == {"(0.0, 1.0)"}  # seed 0 answers Spanish in English, seed 1 in Spanish
    assert {r["seed_range"] for r in rows if r["lang"] == "en"} == {"(1.0, 1.0)"}
    page = (tmp_path / "report" / "report.html").read_text()
    assert "fidelity over seeds (min-max)" in page and "[0%, 100%]" in page
    seen = [p for p in drawn if p.seen]
    assert len(seen) == 2 and all(p.fidelity == 0.75 for p in seen)  # en 4/4 + es 0/4 or 4/4, two seeds
    assert all(p.ci[0] < 0.75 < p.ci[1] for p in seen)  # the seeds disagree on Spanish: a wide interval
    unseen = [p for p in drawn if not p.seen]
    assert all(p.fidelity == 1.0 and p.ci == (1.0, 1.0) for p in unseen)
    along = read_json(tmp_path / "report" / "finding.json")["along"][0]  # r=8 vs r=64 on seen languages
    assert along["setting"] == "lora.r" and along["seeds"] == 2 and along["a"].endswith("(2 seeds)")

    one_seed = [replace(r, axes={"lora.r": r.axes["lora.r"]}) for r in results if r.axes["train.seed"] == 0]
    run(ReportArgs(title="T"), one_seed, {"en", "es"}, "", tmp_path / "one", ["en", "es", "bn"])
    page = (tmp_path / "one" / "report.html").read_text()
    header = (tmp_path / "one" / "summary.md").read_text().splitlines()[0]
    assert "over seeds" not in page + header and "Left out: fidelity" not in page


def test_a_new_metric_is_one_entry_and_shows_everywhere(tmp_path, capsys):
    """Issue 23: one Column with a per-answer function reaches the cells, summary.csv, summary.md, the HTML
    table (its best run bold), its figure and the console table, with nothing else changed."""
    from babeltune.report import columns, console

    words = columns.Column("words", "words per answer", figure="words", axis="words per answer",
                           console="words per answer", decimals=1, ci="words_ci", higher_is_better=True,
                           per_row=lambda r: len(r.response.split()) + (r.lang == "es" and r.run == "long"))  # fmt: skip
    added = [words, columns.Column("words_ci", "95% CI")]
    columns.COLUMNS.extend(added)  # the edit a new metric is: one entry in the list
    columns.METRICS.append(words)
    try:
        results = [
            evaluated_run(tmp_path, "short", match_es=True),
            evaluated_run(tmp_path, "long", match_es=True),
        ]
        page = run(ReportArgs(title="T"), results, {"en", "es"}, "", tmp_path / "report", ["en", "es", "bn"])
        rows = {
            (r["run"], r["lang"]): r for r in csv.DictReader((tmp_path / "report" / "summary.csv").open())
        }
        assert float(rows["short", "es"]["words"]) == 2.0 and float(rows["long", "es"]["words"]) == 3.0
        assert rows["long", "es"]["words_ci"] == "(3.0, 3.0)"
        assert "words per answer" in (tmp_path / "report" / "summary.md").read_text().splitlines()[0]
        html = page.read_text()
        assert "<th>words per answer</th>" in html and "<td class='num best'>3</td>" in html
        assert (tmp_path / "report" / "words.png").stat().st_size > 5000
        console.print_summary(tmp_path / "report", 1.0)
        assert "words per answer" in capsys.readouterr().out
    finally:
        del columns.COLUMNS[-2:], columns.METRICS[-1]
