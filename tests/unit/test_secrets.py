"""Secrets: an API key never reaches a file or the output."""

import pytest

from babeltune.cli import main


@pytest.mark.slow
def test_an_api_key_never_reaches_a_file_or_the_output(
    tmp_path, tiny_model, chat_server, monkeypatch, capsys
):
    key = "sk-LEAK-CANARY-0123456789abcdef"
    monkeypatch.setenv("BT_SECRET", key)

    def reply(body, attempt):
        text = body["messages"][-1]["content"]
        if "[Question]" in text:
            return "Fine. Rating: [[2]]"
        return "[es] " + text.partition("\n\n")[2]

    server = chat_server(reply)
    cfg = tmp_path / "secret.yaml"
    cfg.write_text(f"""# babeltune run secret.yaml
name: secret
output_dir: {tmp_path / "run"}
data: {{languages: [en, es], max_examples_per_language: 4}}
translate: {{enabled: true, backend: openai, model: mt, base_url: "{server.url}", api_key_env: BT_SECRET,
            check_language: false, min_length_ratio: 0.0, max_length_ratio: 100.0}}
test: {{languages: [en, es], max_prompts: 2}}
mix: {{regimes: [english-only, multilingual-downsampled]}}
models: [{{name: "{tiny_model}"}}]
train: {{epochs: 1, batch_size: 4, grad_accum: 1}}
generate: {{max_new_tokens: 4}}
evaluate: {{judge: {{backend: openai, model: judge, base_url: "{server.url}", api_key_env: BT_SECRET}}}}
""")
    assert main(["run", str(cfg)]) == 0
    out = capsys.readouterr()
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert len(files) > 40 and server.calls > 0
    leaks = [str(p) for p in files if key.encode() in p.read_bytes()]
    assert leaks == [] and key not in out.out + out.err
    jobs = [p.read_text() for p in (tmp_path / "run" / "evaluate").glob("*/job.yaml")]
    assert jobs and all("api_key_env: BT_SECRET" in job for job in jobs)  # the name, not the key
