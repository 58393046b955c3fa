"""`babeltune evaluate`, `compare` and `judge-agreement` in real processes: a judge prompt of your own, paired
judgements, agreement with human ratings."""

import re
import shutil

from babeltune.io import read_json, write_jsonl
from conftest import REPO, babeltune, tiny_config


def test_compare_through_the_cli_keeps_each_judges_verdicts_apart(tmp_path, tiny_model):
    from conftest import babeltune, tiny_config

    cfg = str(tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run"))
    runs = [f"{tiny_model.rsplit('/', 1)[1]}/lora/{m}" for m in ("en-only", "multi-down")]
    first = babeltune("compare", cfg, "--runs", *runs)
    assert first.returncode == 0, first.stderr
    assert f"{runs[0]} vs {runs[1]} (judge {tiny_model})" in first.stdout
    assert "inconsistent (the verdict flipped with the order)" in " ".join(first.stdout.split())

    shutil.copytree(tiny_model, tmp_path / "judge-two")
    second = babeltune("compare", cfg, "--runs", *runs, f"--evaluate.judge.model={tmp_path / 'judge-two'}")
    assert second.returncode == 0, second.stderr
    folders = sorted(p.name for p in (tmp_path / "run" / "compare").iterdir())
    assert len(folders) == 2 and all(
        (tmp_path / "run" / "compare" / f / "pairwise_summary.json").exists() for f in folders
    )
    # Both comparisons reach the report (issue 26, item 6): one row each, with the judge that made it.
    report = babeltune("report", cfg)
    assert report.returncode == 0, report.stderr
    (page,) = (tmp_path / "run" / "report").glob("*/report.html")
    section = page.read_text().partition("Pairwise judgements (babeltune compare)")[2].partition("<h2>")[0]
    assert section.count("<tr><td>") == 2 and str(tmp_path / "judge-two") in section
    assert f"<td>{runs[0]}</td><td>{runs[1]}</td><td>{tiny_model}</td>" in section


def test_judge_agreement_joins_on_run_id_and_language(tmp_path):
    """The paper's test files give a prompt the same id in every language: human scores keyed by that id
    alone matched responses in two languages and collapsed silently (es item r 0.26 instead of 0.41 in the
    trial). Now such rows are refused until a lang column says which; with it the numbers equal those of
    babeltune's own ids."""
    from babeltune.records import Score
    from conftest import babeltune

    judge = {0: [1, 2, 3, 3, 2, 1], 1: [2, 2, 3, 1, 1, 3]}
    human = {0: [1, 2, 3, 2, 2, 1], 1: [3, 2, 2, 1, 2, 3]}
    scores, by_ours, by_file, by_file_lang = [], [], [], []
    for name in ("r1", "r2"):
        for lang, shift in (("es", 0), ("de", 1)):
            for k in range(6):
                j = judge[shift][k] if name == "r1" else judge[1 - shift][k]
                h = human[shift][k] if name == "r1" else human[1 - shift][k]
                uuid = f"9f1c-{k}"  # the same in every language, as in the paper's files
                scores.append(Score(f"line-{k}:{lang}", f"line-{k}", lang, name, "answer", lang, "ok", True, j,
                                    f"[[{j}]]", j, None, file_id=uuid).to_dict())  # fmt: skip
                by_ours.append({"id": f"line-{k}:{lang}", "run": name, "score": h})
                by_file.append({"id": uuid, "run": name, "score": h})
                by_file_lang.append({"id": uuid, "run": name, "lang": lang, "score": h})
    write_jsonl(tmp_path / "scores.jsonl", scores)
    for name, rows in (("ours", by_ours), ("file", by_file), ("file_lang", by_file_lang)):
        write_jsonl(tmp_path / f"{name}.jsonl", rows)
    refused = babeltune("judge-agreement", str(tmp_path / "file.jsonl"), str(tmp_path / "scores.jsonl"))
    assert (
        refused.returncode == 2
        and "match responses in several languages; add a lang column" in refused.stderr
    )
    ours = babeltune("judge-agreement", str(tmp_path / "ours.jsonl"), str(tmp_path / "scores.jsonl"))
    joined = babeltune("judge-agreement", str(tmp_path / "file_lang.jsonl"), str(tmp_path / "scores.jsonl"))
    assert ours.returncode == joined.returncode == 0, joined.stderr

    def table(out):
        return [line for line in out.splitlines() if line.startswith(("│ es", "│ de"))]

    assert table(ours.stdout) == table(joined.stdout) and len(table(ours.stdout)) == 2
    assert f"r1: judge scores from {tmp_path / 'scores.jsonl'}" in ours.stdout
    stray = tmp_path / "stray.jsonl"
    write_jsonl(stray, by_ours + [{"id": "line-9:es", "run": "r1", "score": 2}])
    missed = babeltune("judge-agreement", str(stray), str(tmp_path / "scores.jsonl"))
    assert (
        missed.returncode == 2
        and "1 human score(s) match no response" in missed.stderr
        and "line-9:es" in missed.stderr
    )


def test_every_field_that_reaches_the_judge_re_judges_and_no_other(tmp_path, tiny_model, chat_server):
    """Issue 28, item 1: a reworded rating prefix, a new parser or scale reaches the judge or reads its answer,
    so it is judged again; a new name or version of the prompt file changes nothing and costs nothing."""
    import yaml

    from conftest import babeltune, tiny_config

    server = chat_server(lambda body, attempt: "Fine. Rating: [[2]] Score: [[2]]")
    prompt = {"name": "mine", "version": 1, "parser": "bracket-rating", "scale": [1, 3], "system": "S",
              "user": "Q: {question} A: {answer}", "rating_prefix": "Rating: [["}  # fmt: skip
    path = tmp_path / "judge.yaml"
    evaluate = f'{{judge: {{backend: openai, model: j, base_url: "{server.url}", api_key_env: null, prompt: "{path}"}}}}'
    cfg = str(tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", evaluate=evaluate,
                          test="{languages: [en, es], max_prompts: 1}"))  # fmt: skip
    paid = []
    for field, value in [(None, None), ("name", "renamed"), ("version", 2), ("system", "S2"),
                         ("user", "Q2: {question} A: {answer}"), ("rating_prefix", "Score: [["), ("scale", [1, 5]),
                         ("parser", "pairwise-verdict")]:  # fmt: skip
        if field:
            prompt[field] = value
        path.write_text(yaml.safe_dump(prompt))
        calls = server.calls
        proc = babeltune("evaluate", cfg)
        assert proc.returncode == 0, proc.stderr[-2000:]
        paid.append((field, server.calls - calls))
    assert paid[0][1] > 0 and [f for f, n in paid[1:] if n] == [
        "system",
        "user",
        "rating_prefix",
        "scale",
        "parser",
    ]


def test_a_judge_prompt_of_your_own_by_path(tmp_path, tiny_model):
    own = tmp_path / "strict-judge.yaml"
    text = (
        (REPO / "src/babeltune/resources/judges/paper-1to3.yaml")
        .read_text()
        .replace("name: paper-1to3", "name: strict")
    )
    own.write_text(text.replace("You are a fair", "You are a very strict"))
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run")
    assert babeltune("evaluate", str(cfg), f"--evaluate.judge.prompt={own}").returncode == 0
    evaluation = read_json(next((tmp_path / "run" / "evaluate").glob("*/evaluation.json")))
    assert evaluation["judge"]["prompt"] == str(own)
    md = next((tmp_path / "run").glob("report/*/summary.md"), None)
    assert md is None  # `evaluate` stops before the report
    assert babeltune("report", str(cfg), f"--evaluate.judge.prompt={own}").returncode == 0
    md = next((tmp_path / "run").glob("report/*/summary.md")).read_text()
    assert re.search(r"\| \d+% \|", md)  # fidelity in percent, as the console and the HTML show it
