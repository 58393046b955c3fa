"""Keep the console for what a user can act on: third-party libraries' notices about their own API changes
(``FutureWarning: is_gradient_checkpointing is deprecated``, printed by PEFT's use of transformers in every
training task) are not."""

from __future__ import annotations

import os
import warnings

THIRD_PARTY = r"(transformers|peft|trl|accelerate|torch|datasets|huggingface_hub|vllm)(\.|$)"


def quiet_third_party() -> None:
    """Hide third-party deprecation notices and transformers' info logging, in this process and in the
    processes it starts (the environment carries the logging level; warning filters by module do not pass
    through ``PYTHONWARNINGS``, so each entry point calls this itself)."""
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=THIRD_PARTY)
    # Read when transformers is first imported: importing it here would cost every command 0.9 s.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
