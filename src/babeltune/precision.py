"""Which number format the hardware computes fast: shared by training, generation, serving and judging."""

from __future__ import annotations

from functools import cache

PRECISION_OF = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}  # weights dtype -> what computes


@cache
def bf16_is_fast() -> bool:
    """Whether this hardware multiplies bf16 matrices natively (measured here: 4.5x fp32 on an AVX512-BF16 CPU)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def resolve_precision(precision: str, dtype: str) -> str:
    """The autocast precision actually used: ``auto`` becomes the weights' dtype when that is not float32,
    else bf16 on hardware that is fast at it, else fp32.

    >>> resolve_precision("fp32", "float32"), resolve_precision("auto", "bfloat16")
    ('fp32', 'bf16')
    """
    if precision != "auto":
        return precision
    if dtype != "float32":
        return {"bfloat16": "bf16", "float16": "fp16"}[dtype]
    return "bf16" if bf16_is_fast() else "fp32"


def autocast_dtype(precision: str):
    """The torch dtype a resolved precision computes in under autocast; None for fp32."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def inference_bf16(precision: str, dtype: str) -> bool:
    """Whether inference runs under bf16 autocast: the same rule as training's, for every engine and server
    (``auto`` on float32 weights: where the hardware is fast at bf16).

    >>> inference_bf16("fp32", "bfloat16"), inference_bf16("bf16", "float32"), inference_bf16("auto", "bfloat16")
    (False, True, True)
    """
    return resolve_precision(precision, dtype) == "bf16"
