"""`babeltune translate` in real processes: failed segments retried by the next command and nothing else;
plan and mix agree on C after translation drops items."""

import json
import zlib

from babeltune.io import read_json, read_jsonl
from conftest import babeltune, tiny_config
from helpers.cli import last_message


def test_failed_translations_are_retried_by_the_next_command_and_nothing_else(
    tmp_path, tiny_model, chat_server
):
    healthy, refused = [False], set()

    def endpoint(body, attempt):
        text = last_message(body).partition("\n\n")[2]
        if not healthy[0] and zlib.crc32(text.encode()) % 3 == 0:
            refused.add(text)
            return 503
        return f"[es] {text}"

    server = chat_server(endpoint)
    translate = (f'{{enabled: true, backend: openai, model: mt, base_url: "{server.url}", api_key_env: null, '
                 "max_retries: 0, check_language: false, min_length_ratio: 0.0, max_length_ratio: 100.0}")  # fmt: skip
    cfg = str(tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", translate=translate))

    first = babeltune("translate", cfg)
    assert first.returncode == 3, first.stderr
    assert "items failed (translate en -> es" in first.stderr and "rerun to retry them" in first.stderr
    (folder,) = (tmp_path / "run" / "translate").iterdir()
    failed = read_jsonl(folder / "failed.jsonl")
    assert failed and refused and read_json(folder / ".done.json")["complete"] is False

    # Mixtures built on the incomplete translation: the translation is retried first (still refused).
    calls = server.calls
    assert babeltune("mix", cfg).returncode == 3
    assert server.calls - calls == len(refused)
    assert len(list((tmp_path / "run" / "mix").iterdir())) == 1

    healthy[0] = True
    calls = server.calls
    second = babeltune("translate", cfg)
    assert second.returncode == 0, second.stderr
    assert server.calls - calls == len(refused)  # exactly the refused segments, once each
    assert read_jsonl(folder / "failed.jsonl") == [] and read_json(folder / ".done.json")["complete"]

    # The mixtures followed what the translation now holds: made again, from the cache, with no call.
    calls = server.calls
    third = babeltune("mix", cfg)
    assert (
        third.returncode == 0
        and server.calls == calls
        and "3 of 4 tasks already done; running 1" in third.stdout
    )
    assert len(list((tmp_path / "run" / "mix").iterdir())) == 2
    assert "3 of 3 tasks already done; running 0" in babeltune("translate", cfg).stdout
    assert server.calls == calls


def test_plan_and_mix_agree_on_c_after_translation_drops_items(tmp_path, tiny_model, chat_server):
    server = chat_server(
        lambda body, attempt: (
            last_message(body).partition("\n\n")[2]
            if "Write" in last_message(body)
            else f"[es] {last_message(body)}"
        )
    )
    translate = (f'{{enabled: true, backend: openai, model: mt, base_url: "{server.url}", api_key_env: null, '
                 "check_language: false, min_length_ratio: 0.0, max_length_ratio: 100.0}")  # fmt: skip
    cfg = tiny_config(tmp_path / "exp.yaml", tiny_model, tmp_path / "run", translate=translate,
                      data="{languages: [en, es], max_examples_per_language: 24}")  # fmt: skip
    assert babeltune("translate", str(cfg)).returncode == 0
    (folder,) = (tmp_path / "run" / "translate").iterdir()
    kept = sum(
        json.loads(line)["lang"] == "es" for line in (folder / "examples.jsonl").read_text().splitlines()
    )
    assert 0 < kept < 24  # untranslated items were filtered out
    plan = babeltune("plan", str(cfg)).stdout
    assert f"C = {kept} examples (one monolingual run; the smallest language: es has {kept} examples)" in plan
    assert babeltune("mix", str(cfg)).returncode == 0
    manifest = read_json(next((tmp_path / "run" / "mix").glob("*/en-only/manifest.json")))
    assert (
        manifest["budget_C"] == kept
        and manifest["budget_reason"] == f"the smallest language: es has {kept} examples"
    )
