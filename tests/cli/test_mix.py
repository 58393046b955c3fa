"""`babeltune mix` and `status` in real processes: exact budgets, ratios never normalised silently, every
task of a run directory named."""

from __future__ import annotations

import json

from conftest import babeltune, tiny_config


def test_budgets_are_exact_and_ratios_are_never_normalised_silently(tmp_path):
    """Issue 26, item 5, through the command: C = 16 over three languages draws 16 (flooring drew 15); a
    language left out of mix.ratios, or shares adding up to 1.5, is one line naming the field; with
    mix.normalise_ratios the manifest says which strategy and shares drew the mixture."""
    import json

    from conftest import babeltune

    run_dir = tmp_path / "run"
    base = ("configs/quick.yaml", f"--output_dir={run_dir}", "--mix.regimes=[multilingual-downsampled:ratios]",
            "--mix.budget=16", "--data.max_examples_per_language=24")  # fmt: skip
    missing = babeltune("mix", *base, "--mix.ratios={en: 0.5, es: 0.5}")
    assert missing.returncode == 2 and missing.stderr.strip().splitlines()[-1] == (
        "babeltune: error: configs/quick.yaml: mix.ratios: no share for ru (give 0 to leave a language out, or "
        "mix.normalise_ratios: true gives unlisted languages 0)"
    )
    over = babeltune("mix", *base, "--mix.ratios={en: 0.5, es: 0.5, ru: 0.5}")
    assert over.returncode == 2 and "mix.ratios: the shares add up to 1.5, not 1" in over.stderr
    made = babeltune("mix", *base, "--mix.ratios={en: 0.5, es: 0.5, ru: 0.5}", "--mix.normalise_ratios=true")
    assert made.returncode == 0, made.stderr
    (manifest,) = run_dir.glob("mix/*/multi-down-ratios/manifest.json")
    m = json.loads(manifest.read_text())
    assert m["examples"] == 16 and sum(m["per_language"].values()) == 16
    assert m["strategy"] == "ratios" and m["ratios"] == {"en": 0.5, "es": 0.5, "ru": 0.5}


def test_status_names_every_task_of_the_run_directory(tmp_path, tiny_model):
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run")
    assert babeltune("mix", str(cfg)).returncode == 0
    out = babeltune("status", str(tmp_path / "run"), "--json")
    assert out.returncode == 3  # not everything is done
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    states = {(r["stage"], r["state"]) for r in rows}
    assert ("mix", "done") in states and ("train", "to do") in states and ("generate", "waits") in states
    table = babeltune("status", str(tmp_path / "run"))
    assert (
        table.returncode == 3 and "0 of 2 grid points evaluated" in table.stdout and "to do" in table.stdout
    )
    assert babeltune("status", str(tmp_path)).stderr.startswith("babeltune: error: ")
