"""Inference, one home for the generate stage, ``serve``, the local judge and the benchmarks: what decodes
(``decoding.py``), what answers (``target.py``: weights, adapter, template and dtype, from a checkpoint's own
description), how it is loaded and run with transformers (``hf.py``) or vLLM (``vllm_engine.py``)."""
