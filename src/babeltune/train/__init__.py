"""Fine-tuning: the train stage (``stage.py``), its settings, the methods it knows (``babeltune.methods``: LoRA and
full-parameter), its data, Trainer arguments and callbacks, resuming and multi-process launches."""


def __getattr__(name: str):
    """Job files written before this was a package name ``babeltune.train:TrainJob``."""
    if name == "TrainJob":
        from babeltune.train.stage import TrainJob

        return TrainJob
    raise AttributeError(f"module 'babeltune.train' has no attribute {name!r}")
