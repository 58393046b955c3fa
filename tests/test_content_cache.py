"""The run-level caches of paid work: shards per process, merged on read, no lock shared between writers."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

from babeltune.content_cache import ContentCache, compact, foldable
from conftest import babeltune, tiny_config

WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from babeltune.content_cache import ContentCache
    folder, me, start = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    while time.time() < start:  # every writer starts at once
        time.sleep(0.001)
    with ContentCache(folder) as cache:
        for i in range(0, 400, 4):  # items 0..399 in batches; writers overlap on three quarters of them
            keys = [f"item-{(i + j + 100 * me) % 400}" for j in range(4)]
            missing = [k for k in keys if k not in cache.get_many(keys)]
            cache.put_many({k: {"score": int(k.split("-")[1]) % 3 + 1, "by": me} for k in missing})
""")


def test_four_processes_write_one_cache_at_once_and_every_item_is_read_back(tmp_path):
    folder = tmp_path / "judgements"
    start = time.time() + 2
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(me), str(start)]) for me in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    shards = sorted(p.name for p in folder.iterdir())
    assert len(shards) == 4 and not any(".open." in s for s in shards)  # one closed shard per process
    cache = ContentCache(folder)
    values = cache.get_many([f"item-{i}" for i in range(400)])
    assert len(values) == 400 and all(v["score"] == i % 3 + 1 for i, v in enumerate(values.values()))
    assert compact(folder) == (4, 400)
    (only,) = folder.iterdir()
    keys = [json.loads(line.split("\t", 1)[1])[0] for line in only.read_text().splitlines()]
    assert sorted(keys) == sorted(f"item-{i}" for i in range(400))  # stored once each
    assert ContentCache(folder).get_many(["item-7"])["item-7"]["score"] == 2


def test_a_damaged_or_torn_record_is_skipped_never_read_wrong(tmp_path):
    with ContentCache(tmp_path / "c") as cache:
        cache.put_many({"a": 1, "b": 2, "c": 3})
    (shard,) = (tmp_path / "c").iterdir()
    lines = shard.read_text().splitlines(keepends=True)
    shard.write_text(lines[0] + lines[1].replace("2]", "5]") + lines[2][:-4])  # b damaged, c torn
    cache = ContentCache(tmp_path / "c")
    assert cache.get_many(["a", "b", "c"]) == {"a": 1} and cache.damaged == 1


def test_a_reader_sees_what_another_process_wrote_after_it_opened(tmp_path):
    reader = ContentCache(tmp_path / "c")
    assert reader.get_many(["x"]) == {}
    code = "from babeltune.content_cache import ContentCache; import sys; ContentCache(sys.argv[1]).put_many({'x': 42})"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "c")], check=True)
    assert reader.get_many(["x"]) == {"x": 42}
    # the writer was killed without closing its shard: it is left open, yet folded since its process is gone
    assert len(foldable(tmp_path / "c")) == 1


def test_concurrent_evaluate_tasks_share_the_judgement_cache_and_a_rerun_pays_nothing(
    tmp_path, tiny_model, chat_server
):
    server = chat_server(lambda body, attempt: "Rating: 2")
    judge = f'{{judge: {{backend: openai, model: m, base_url: "{server.url}", api_key_env: null}}}}'
    mix = "{regimes: [english-only, multilingual-downsampled, multilingual, monolingual], monolingual_languages: [es]}"
    cfg = tiny_config(tmp_path / "c.yaml", tiny_model, tmp_path / "run", evaluate=judge, mix=mix)
    assert babeltune("generate", str(cfg)).returncode == 0
    procs = [subprocess.Popen([sys.executable, "-m", "babeltune", "evaluate", str(cfg), "--task", str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(4)]  # fmt: skip
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outs
    paid = server.calls
    assert paid >= 4
    cache = tmp_path / "run" / "cache" / "judgements"
    assert len(list(cache.glob("*.jsonl"))) == 4  # one shard per process that paid
    folded = babeltune("compact", str(tmp_path / "run"))
    assert folded.returncode == 0 and "4 shards folded into one of" in folded.stdout, folded.stderr
    assert len(list(cache.glob("*.jsonl"))) == 1
    # a new evaluation of the same answers (another language-ID threshold: new evaluate tasks) pays nothing
    again = babeltune("evaluate", str(cfg), "--evaluate.langid.min_letters=7")
    assert again.returncode == 0, again.stderr
    assert server.calls == paid
