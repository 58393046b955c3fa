"""The run-level cache in process: a damaged or torn record is skipped, never read wrong."""

from __future__ import annotations

from babeltune.content_cache import ContentCache


def test_a_damaged_or_torn_record_is_skipped_never_read_wrong(tmp_path):
    with ContentCache(tmp_path / "c") as cache:
        cache.put_many({"a": 1, "b": 2, "c": 3})
    (shard,) = (tmp_path / "c").iterdir()
    lines = shard.read_text().splitlines(keepends=True)
    shard.write_text(lines[0] + lines[1].replace("2]", "5]") + lines[2][:-4])  # b damaged, c torn
    cache = ContentCache(tmp_path / "c")
    assert cache.get_many(["a", "b", "c"]) == {"a": 1} and cache.damaged == 1
