"""Causal-LM loss from the last hidden states, in chunks, over only the tokens the loss counts.

A model's own loss materialises logits for every position: batch x length x vocabulary floats, several
copies of them through softmax and backward (for a 49k vocabulary at micro-batch 8 x 256, about 0.4 GB a
copy in fp32; for 128k-256k vocabularies of current models, GBs). Here the model returns its last hidden
states and the logits of one position only; the head then runs on chunks of the positions that have a
label (not on prompt tokens when the loss is on answers only, not on padding), and each chunk's gradients
are computed at once, so its logits are freed before the next. Same loss, less memory, less head compute.

It applies only to models whose logits are exactly their output embedding applied to the last hidden state
(no soft-capping or scaling): `supported` checks that on a real batch before training.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

CHUNK_TOKENS = 1024  # positions per head call: 1024 x 49k fp32 logits = 0.2 GB at most, then freed
MODEL_OUTPUTS = {"output_hidden_states": True, "logits_to_keep": 1}  # added to every training batch


def supported(model, input_ids, attention_mask) -> bool:
    """Whether ``model``'s logits equal its output embedding applied to its last hidden state, and it can
    return the logits of the last position only (checked on ``input_ids``, without gradients).

    The head's weights are scaled by 64 (exactly, a power of two; restored after) for the check, so logits
    are large enough that soft-capping (Gemma 2) or a logit scale (Cohere) cannot hide in rounding.
    """
    import torch

    head = model.get_output_embeddings()
    weight = getattr(head, "weight", None)
    if weight is None or not weight.is_floating_point():  # no head, or a quantized one
        return False
    try:
        with torch.no_grad():
            weight.mul_(64)
            try:
                full = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
                last = model(input_ids=input_ids, attention_mask=attention_mask, **MODEL_OUTPUTS)
                ours = head(full.hidden_states[-1])
            finally:
                weight.div_(64)
    except (TypeError, ValueError):  # a forward without logits_to_keep or hidden states
        return False

    def close(a, b) -> bool:
        return torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-3 * float(b.abs().max()))

    return (
        last.logits.shape[1] == 1
        and close(ours, full.logits)
        and close(last.logits[:, -1], full.logits[:, -1])
    )


def linear_cross_entropy(hidden, weight, bias, targets, dtype=None):
    """Summed cross-entropy of ``hidden @ weight.T (+ bias)`` against ``targets``, chunk by chunk, with the
    gradients computed in the same pass: no chunk's logits outlive it and nothing is recomputed in backward,
    so it does the model's own matrix products (fewer where tokens have no label) in a fraction of the memory.
    ``dtype``: the matrix products' dtype under mixed precision (softmax and sums stay in fp32).
    """
    return _function().apply(hidden, weight, bias, targets, dtype)


@functools.cache
def _function():
    import torch

    class Function(torch.autograd.Function):
        @staticmethod
        def forward(ctx, hidden, weight, bias, targets, dtype):
            compute = dtype or hidden.dtype
            wants = (hidden.requires_grad, weight.requires_grad, bias is not None and bias.requires_grad)
            grad_h = torch.zeros_like(hidden) if wants[0] else None
            grad_w = torch.zeros_like(weight, dtype=torch.float32) if wants[1] else None
            grad_b = torch.zeros_like(bias, dtype=torch.float32) if wants[2] else None
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            w = weight.to(compute)
            with torch.autocast(hidden.device.type, enabled=False):  # the dtypes here are chosen explicitly
                for start in range(0, len(targets), CHUNK_TOKENS):
                    h, t = (
                        hidden[start : start + CHUNK_TOKENS].to(compute),
                        targets[start : start + CHUNK_TOKENS],
                    )
                    logits = h @ w.T
                    if bias is not None:
                        logits += bias.to(compute)
                    logits = logits.float()
                    norm = torch.logsumexp(logits, dim=-1)
                    total += (norm - logits.gather(1, t[:, None]).squeeze(1)).sum()
                    if not any(wants):
                        continue
                    grad = logits.sub_(norm[:, None]).exp_()  # softmax, in place
                    grad[torch.arange(len(t), device=t.device), t] -= 1
                    if grad_b is not None:
                        grad_b += grad.sum(0)
                    grad = grad.to(compute)
                    if grad_h is not None:
                        grad_h[start : start + CHUNK_TOKENS] = grad @ w
                    if grad_w is not None:
                        grad_w += (grad.T @ h).float()
            ctx.grads = (grad_h, grad_w, grad_b)
            ctx.dtypes = (weight.dtype, bias.dtype if bias is not None else None)
            return total

        @staticmethod
        def backward(ctx, grad_total):
            grad_h, grad_w, grad_b = ctx.grads
            scale = grad_total.float()
            return (
                grad_h * scale.to(grad_h.dtype) if grad_h is not None else None,
                (grad_w * scale).to(ctx.dtypes[0]) if grad_w is not None else None,
                (grad_b * scale).to(ctx.dtypes[1]) if grad_b is not None else None,
                None,
                None,
            )

    return Function


def loss_function(head, autocast_dtype=None) -> Callable:
    """A Trainer ``compute_loss_func``: (outputs, labels, num_items_in_batch) -> the model's own causal-LM loss
    (summed and divided by ``num_items_in_batch`` when Trainer counts tokens across accumulation steps)."""

    def compute(outputs, labels, num_items_in_batch=None):
        hidden = outputs.hidden_states[-1][:, :-1]
        targets = labels[:, 1:].to(hidden.device)
        counted = targets != -100
        total = linear_cross_entropy(
            hidden[counted], head.weight, head.bias, targets[counted], autocast_dtype
        )
        return total / (num_items_in_batch if num_items_in_batch is not None else max(int(counted.sum()), 1))

    return compute
