"""Two ways a LoRA training step wastes time on a CPU, closed without changing what it computes.

Found with ``bench/train_profile.py`` (the default job on the embedded model, 2 cores): the matrix products
took under a third of a step; drawing LoRA's dropout masks (``aten::bernoulli_``, one per adapted module and
micro-batch) took 16 % and dtype casts 13 %.

- ``cheap_dropout``: PEFT's ``nn.Dropout`` draws its mask with ``bernoulli_`` (3.5 ms for a 4 x 230 x 576
  input here); comparing uniform 31-bit integers with a threshold is the same Bernoulli mask (to 5e-10 in
  the drop probability) in 1.6 ms.
- ``frozen_weights_in``: under autocast each linear layer casts its fp32 weight to bf16 on every forward,
  and autocast caches only the casts of weights that train; a LoRA run's frozen weights are cast again in
  every micro-batch. Keeping them in the compute dtype gives the very same products (the cast is the same
  rounding, done once) and halves their memory. Embeddings, norms and the output head keep their dtype, so
  the residual stream and the loss stay in fp32.
"""

from __future__ import annotations

from functools import cache

BITS = 31  # int32's random_() draws uniformly from [0, 2**31)


@cache
def _dropout_class():
    import torch

    class CheapDropout(torch.nn.Module):
        """Inverted dropout with the mask drawn as integers: same distribution as ``nn.Dropout``, about half its
        time on a CPU."""

        def __init__(self, p: float):
            super().__init__()
            self.p = p
            self.threshold = round(p * 2**BITS)

        def forward(self, x):
            if not self.training or self.p == 0:
                return x
            draws = torch.empty(x.shape, dtype=torch.int32, device=x.device).random_()
            return torch.where(draws >= self.threshold, x, 0).mul_(1 / (1 - self.p))

        def extra_repr(self) -> str:
            return f"p={self.p}"

    return CheapDropout


def cheap_dropout(model) -> int:
    """Replace every ``nn.Dropout`` with p > 0 inside LoRA layers by the integer-mask one; returns how many."""
    import torch

    replaced = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, torch.nn.ModuleDict):
            continue
        for name, dropout in dropouts.items():
            if type(dropout) is torch.nn.Dropout and dropout.p > 0:
                dropouts[name] = _dropout_class()(dropout.p)
                replaced += 1
    return replaced


def frozen_weights_in(model, dtype) -> int:
    """Cast the frozen fp32 weights of linear layers (not the output head) to ``dtype``; returns how many."""
    import torch

    head = model.get_output_embeddings()
    cast = 0
    for module in model.modules():
        if type(module) is not torch.nn.Linear or module is head:
            continue
        if not module.weight.requires_grad and module.weight.dtype == torch.float32:
            module.weight.data = module.weight.data.to(dtype)
            if module.bias is not None and not module.bias.requires_grad:
                module.bias.data = module.bias.data.to(dtype)
            cast += 1
    return cast
