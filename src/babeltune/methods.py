"""Fine-tuning methods as objects: what differs between LoRA and full-parameter training, in one place.

A method says where its weights go, whether they are an adapter on the base model, how to wrap the model for
training, which speed-ups apply, what it costs (planning) and which ``train.full_*``-style settings override
the plain ones for its runs. A new method is one class registered here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from babeltune.registry import Registry


@dataclass(frozen=True)
class Method:
    name: str
    weights_folder: str  # the folder of a training task that holds what it trained
    adapter: bool  # the weights are an adapter on the base model (else the whole model)
    flops_per_parameter_token: (
        int  # training FLOPs per parameter per token: 6 with weight gradients, 4 without
    )
    bytes_per_parameter: int  # training memory per base parameter under plain data parallelism
    paper_repetition_penalty: float  # the paper's decoding of this method's runs
    overrides: dict[str, str] = field(default_factory=dict)  # plain train field -> the field overriding it
    settings_group: str | None = None  # the experiment's settings group only this method reads

    def wrap(self, model, lora, quantized: bool):
        """The model as training sees it (``lora``: the experiment's LoraArgs)."""
        return model

    def speed_ups(self, model, precision: str) -> str | None:
        """Cheaper training steps, where the method allows; returns the frozen weights' new dtype, if cast."""
        return None


@dataclass(frozen=True)
class LoRA(Method):
    def wrap(self, model, lora, quantized: bool):
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        from babeltune.models import lora_targets

        if quantized:
            model = prepare_model_for_kbit_training(model)
        targets = lora.target_modules or lora_targets(model.config.model_type)
        config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
                            task_type="CAUSAL_LM")  # fmt: skip
        return get_peft_model(model, config)

    def speed_ups(self, model, precision: str) -> str | None:
        """The integer-mask dropout, and frozen linear weights kept in the autocast dtype (not cast again each
        micro-batch; the same products)."""
        from babeltune import lora_speed
        from babeltune.precision import autocast_dtype

        lora_speed.cheap_dropout(model)
        dtype = autocast_dtype(precision)
        if dtype is None or not lora_speed.frozen_weights_in(model, dtype):
            return None
        return str(dtype).removeprefix("torch.")


METHODS: Registry[Method] = Registry("fine-tuning method")
METHODS.register("lora")(
    LoRA("lora", "adapter", adapter=True, flops_per_parameter_token=4, bytes_per_parameter=2,
         paper_repetition_penalty=1.0, settings_group="lora")
)  # fmt: skip
METHODS.register("full")(
    Method("full", "model", adapter=False, flops_per_parameter_token=6, bytes_per_parameter=16,
           paper_repetition_penalty=1.1,
           overrides={"epochs": "full_epochs", "learning_rate": "full_learning_rate",
                      "loss_on_prompt": "full_loss_on_prompt", "nproc": "full_nproc"})
)  # fmt: skip


WHOLE_MODEL = "full"  # the method a checkpoint of a whole model says it is (a merged adapter included)


def override_fields() -> set[str]:
    """Every method's override fields (a run of one method holds none of them)."""
    return {o for name in METHODS.names() for o in METHODS.get(name).overrides.values()}
