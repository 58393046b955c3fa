"""CTranslate2 copies of transformers MT models, converted once into babeltune's model cache."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from babeltune.io import fingerprint
from babeltune.models import cache_dir, model_slug


def converted(name: str) -> Path:
    """The CTranslate2 folder for ``name`` (hub id or local folder), converting it on first use.

    Weights are stored as the source has them; the compute type (int8, ...) is chosen when loading. The
    conversion goes to a temporary folder renamed into place, so a killed conversion leaves nothing behind
    that looks finished.
    """
    import ctranslate2
    from ctranslate2.converters import TransformersConverter

    # A retrained model in the same folder has new sizes and times, so it is converted again.
    key = hashlib.sha256(f"{fingerprint(name)}|{ctranslate2.__version__}".encode()).hexdigest()[:12]
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
