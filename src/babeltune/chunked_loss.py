"""Causal-LM loss from the last hidden states, in chunks, over only the tokens the loss counts.

A model's own loss materialises logits for every position: batch x length x vocabulary floats, several
copies of them through softmax and backward (for a 49k vocabulary at micro-batch 8 x 256, about 0.4 GB a
copy in fp32; for 128k-256k vocabularies of current models, GBs). Here the model returns its last hidden
states and the logits of one position only; the head then runs on chunks of the positions that have a
label (not on prompt tokens when the loss is on answers only, not on padding), each chunk recomputed in
backward instead of kept. Same loss, less memory, less head compute.

It applies only to models whose logits are exactly their output embedding applied to the last hidden state
(no soft-capping or scaling): `supported` checks that on a real batch before training.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

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
    if head is None or not torch.is_floating_point(getattr(head, "weight", torch.zeros(0, dtype=torch.long))):
        return False
    try:
        with torch.no_grad():
            head.weight.mul_(64)
            try:
                full = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
                last = model(input_ids=input_ids, attention_mask=attention_mask, **MODEL_OUTPUTS)
                ours = head(full.hidden_states[-1])
            finally:
                head.weight.div_(64)
    except (TypeError, ValueError):  # a forward without logits_to_keep or hidden states
        return False

    def close(a, b) -> bool:
        return torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-3 * float(b.abs().max()))

    return (
        last.logits.shape[1] == 1
        and close(ours, full.logits)
        and close(last.logits[:, -1], full.logits[:, -1])
    )


def loss_function(head, autocast_dtype=None) -> Callable:
    """A Trainer ``compute_loss_func``: (outputs, labels, num_items_in_batch) -> the model's own causal-LM loss
    (summed and divided by ``num_items_in_batch`` when Trainer counts tokens across accumulation steps)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.checkpoint import checkpoint

    def chunk_loss(hidden, labels):
        return F.cross_entropy(head(hidden).float(), labels, reduction="sum")

    def compute(outputs, labels, num_items_in_batch=None):
        hidden = outputs.hidden_states[-1][:, :-1]
        targets = labels[:, 1:].to(hidden.device)
        counted = targets != -100
        hidden, targets = hidden[counted], targets[counted]
        device = hidden.device.type
        context = torch.autocast(device, dtype=autocast_dtype) if autocast_dtype else nullcontext()
        total = hidden.float().sum() * 0.0  # keeps the graph when no token in the batch has a label
        with context:
            for start in range(0, len(targets), CHUNK_TOKENS):
                part = slice(start, start + CHUNK_TOKENS)
                total = total + checkpoint(chunk_loss, hidden[part], targets[part], use_reentrant=False)
        if num_items_in_batch is None:
            return total / max(len(targets), 1)
        return total / num_items_in_batch

    return compute
