"""Every generation engine, registered: importing this module fills ``ENGINES``."""

from babeltune.inference import hf, openai_engine, vllm_engine  # noqa: F401 - each registers its engine
from babeltune.inference.engine import ENGINES, Answer, Engine, Prompt

__all__ = ["ENGINES", "Answer", "Engine", "Prompt"]
