"""The chunked linear cross-entropy against PyTorch's own: same loss, same gradients."""

import pytest
import torch
import torch.nn.functional as F

from babeltune.train import chunked_loss
from babeltune.train.chunked_loss import linear_cross_entropy


@pytest.mark.parametrize("with_bias", [False, True])
def test_loss_and_gradients_match_the_plain_computation(monkeypatch, with_bias):
    monkeypatch.setattr(chunked_loss, "CHUNK_TOKENS", 7)  # several chunks, the last one partial
    torch.manual_seed(0)
    hidden = torch.randn(30, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    bias = torch.randn(50, requires_grad=True) if with_bias else None
    targets = torch.randint(0, 50, (30,))

    ours = linear_cross_entropy(hidden, weight, bias, targets) / 30
    (ours * 3).backward()  # the gradient flowing in is honoured
    mine = [t.grad.clone() for t in (hidden, weight, bias) if t is not None]
    for t in (hidden, weight, bias):
        if t is not None:
            t.grad = None
    plain = F.cross_entropy(F.linear(hidden, weight, bias), targets)
    (plain * 3).backward()
    assert ours.item() == pytest.approx(plain.item(), rel=1e-6)
    for a, t in zip(mine, [t for t in (hidden, weight, bias) if t is not None], strict=True):
        assert torch.allclose(a, t.grad, atol=1e-6)


def test_a_frozen_head_gets_no_gradient_and_bf16_stays_close():
    torch.manual_seed(1)
    hidden = torch.randn(40, 32, requires_grad=True)
    weight = torch.randn(64, 32)  # frozen, as under LoRA
    targets = torch.randint(0, 64, (40,))
    ours = linear_cross_entropy(hidden, weight, None, targets, torch.bfloat16)
    ours.backward()
    plain = F.cross_entropy(hidden.detach() @ weight.T, targets, reduction="sum")
    assert weight.grad is None and hidden.grad.shape == hidden.shape
    assert ours.item() == pytest.approx(plain.item(), rel=2e-2)
