"""The run-level caches of paid work across real processes: shards per process, merged on read."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

from babeltune.content_cache import ContentCache, compact, foldable

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


def test_a_reader_sees_what_another_process_wrote_after_it_opened(tmp_path):
    reader = ContentCache(tmp_path / "c")
    assert reader.get_many(["x"]) == {}
    code = "from babeltune.content_cache import ContentCache; import sys; ContentCache(sys.argv[1]).put_many({'x': 42})"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "c")], check=True)
    assert reader.get_many(["x"]) == {"x": 42}
    # the writer was killed without closing its shard: it is left open, yet folded since its process is gone
    assert len(foldable(tmp_path / "c")) == 1
