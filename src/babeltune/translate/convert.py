"""CTranslate2 copies of transformers MT models, converted once into babeltune's model cache."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from babeltune.models import cache_dir, model_slug


def source_fingerprint(name: str) -> str:
    """What identifies a model's weights: a hub id as written, a local folder by its path and its files'
    sizes and modification times (so a retrained model in the same folder is converted again)."""
    folder = Path(name)
    if not folder.is_dir():
        return name
    files = sorted(f for f in folder.iterdir() if f.is_file())
    return f"{folder.resolve()}|" + "|".join(
        f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files
    )


def converted(name: str) -> Path:
    """The CTranslate2 folder for ``name`` (hub id or local folder), converting it on first use.

    Weights are stored as the source has them; the compute type (int8, ...) is chosen when loading. The
    conversion goes to a temporary folder renamed into place, so a killed conversion leaves nothing behind
    that looks finished.
    """
    import ctranslate2
    from ctranslate2.converters import TransformersConverter

    key = hashlib.sha256(f"{source_fingerprint(name)}|{ctranslate2.__version__}".encode()).hexdigest()[:12]
    target = cache_dir() / "ctranslate2" / f"{model_slug(name)}-{key}"
    if (target / "model.bin").exists():
        return target
    partial = target.with_name(f"{target.name}.tmp{os.getpid()}")
    TransformersConverter(name).convert(str(partial), force=True)
    try:
        partial.rename(target)
    except OSError:  # another process finished the same conversion first
        shutil.rmtree(partial, ignore_errors=True)
    return target
