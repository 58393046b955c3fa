"""Model loading: a killed conversion of the embedded model leaves no folder behind."""


def test_a_killed_conversion_leaves_no_folder_behind(tmp_path, monkeypatch):
    """The next conversion clears what a killed one half-wrote (under a lock, so never a live one's)."""
    from babeltune import models

    monkeypatch.setenv("BABELTUNE_CACHE", str(tmp_path))
    stale = tmp_path / "models" / ".smollm2-135m.abc123"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"x" * 1000)
    made = []
    monkeypatch.setattr(models, "_dequantise", lambda name, target: made.append(target) or target.mkdir())
    models._convert_embedded("builtin:smollm2-135m")
    assert made and not stale.exists()
