"""The cheaper LoRA step: the same dropout distribution and the very same products, in less time."""

import pytest
import torch

from babeltune import lora_speed
from babeltune.config import LoraArgs
from babeltune.methods import METHODS
from babeltune.models import load_model


def _lora(tiny_model, dropout):
    model = load_model(tiny_model)
    return METHODS.get("lora").wrap(model, LoraArgs(r=4, alpha=8, dropout=dropout), quantized=False)


def test_integer_mask_dropout_has_nn_dropouts_distribution():
    dropout = lora_speed._dropout_class()(0.05)
    x = torch.ones(2_000_000)
    out = dropout(x)
    dropped = (out == 0).float().mean().item()
    assert dropped == pytest.approx(0.05, abs=1e-3)  # binomial sd here: 1.5e-4
    assert torch.allclose(out[out != 0], torch.tensor(1 / 0.95))  # inverted dropout: the mean is kept
    assert out.mean().item() == pytest.approx(1.0, abs=2e-3)
    dropout.eval()
    assert dropout(x) is x


def test_cheap_dropout_replaces_every_lora_dropout(tiny_model):
    model = _lora(tiny_model, 0.1)
    adapted = sum(1 for m in model.modules() if hasattr(m, "lora_dropout"))
    assert lora_speed.cheap_dropout(model) == adapted > 0
    assert not any(type(m) is torch.nn.Dropout for m in model.modules())
    assert lora_speed.cheap_dropout(_lora(tiny_model, 0.0)) == 0  # p = 0 is PEFT's Identity: left alone


def test_frozen_weights_in_bf16_give_the_very_same_products(tiny_model):
    model = _lora(tiny_model, 0.0).eval()
    ids = torch.tensor([[5, 17, 42, 99, 7, 3]])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        before = model(ids).logits
        cast = lora_speed.frozen_weights_in(model, torch.bfloat16)
        after = model(ids).logits
    assert cast == 2 * 7  # 2 layers x (q, k, v, o, gate, up, down); not the head
    assert torch.equal(before, after)  # autocast made the same rounding, once per forward
    trained = [p for p in model.parameters() if p.requires_grad]
    assert trained and all(p.dtype == torch.float32 for p in trained)
    assert model.get_output_embeddings().weight.dtype == torch.float32
