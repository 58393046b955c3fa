"""The experiment's configuration: the stages' settings groups composed into one, loaded from YAML (plus
``--group.field=value`` overrides), and the checks that span groups.

Each group lives beside the stage whose registries give its names meaning, and checks them there
(``mix.MixArgs``, ``train.TrainArgs``, ...); they are re-exported here. The typed YAML <-> dataclass code
is ``babeltune.settings``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from babeltune.data.stage import DataArgs, TestArgs
from babeltune.evaluate.judge import JudgeArgs
from babeltune.evaluate.stage import EvaluateArgs
from babeltune.generate import GenerateArgs
from babeltune.langid import LangIdArgs
from babeltune.mix import MixArgs
from babeltune.models import ModelArgs
from babeltune.registry import BabeltuneError
from babeltune.report.stage import ReportArgs
from babeltune.settings import apply_override, dump_yaml, from_dict, load_yaml, setting, to_dict
from babeltune.settings import describe as describe_fields
from babeltune.train import LoraArgs, TrainArgs
from babeltune.translate.stage import TranslateArgs

__all__ = [
    "DataArgs", "EvaluateArgs", "ExperimentConfig", "GenerateArgs", "JudgeArgs", "LangIdArgs", "LoraArgs",
    "MixArgs", "ModelArgs", "ReportArgs", "TestArgs", "TrainArgs", "TranslateArgs", "apply_override",
    "describe", "dump_yaml", "from_dict", "load", "to_dict",
]  # fmt: skip


@dataclass
class ExperimentConfig:
    name: str = setting(
        "experiment", "experiment name; also the default output folder name", affects_result=False
    )
    output_dir: str | None = setting(None, "run directory (default: runs/<name>)", affects_result=False)
    models: list[ModelArgs] = setting([ModelArgs()], "base models in the grid")
    data: DataArgs = setting(DataArgs(), "training data")
    translate: TranslateArgs = setting(TranslateArgs(), "machine translation of the training data")
    test: TestArgs = setting(TestArgs(), "test prompts")
    mix: MixArgs = setting(MixArgs(), "training mixtures under a budget")
    lora: LoraArgs = setting(LoraArgs(), "LoRA settings")
    train: TrainArgs = setting(TrainArgs(), "fine-tuning")
    generate: GenerateArgs = setting(GenerateArgs(), "answer generation")
    evaluate: EvaluateArgs = setting(EvaluateArgs(), "evaluation")
    report: ReportArgs = setting(ReportArgs(), "report")

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir or f"runs/{self.name}")

    def check(self) -> None:
        """Each group checks its own names; what spans groups is checked here."""
        self.data.check("data")
        self.test.check("test")
        self.mix.check("mix", self.data.languages)
        for i, model in enumerate(self.models):
            model.check(f"models[{i}]")
        self.generate.check("generate")
        self.evaluate.check("evaluate")
        if self.translate.enabled:
            self.translate.check("translate")
            if self.data.source_language not in self.data.languages:
                raise BabeltuneError(
                    "data.source_language: must be one of data.languages when translate.enabled"
                )
        if self.train.epochs <= 0 and not self.train.max_steps:
            raise BabeltuneError("train.epochs: must be positive")


def describe(cls: type = ExperimentConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted name, default, help) for every field of the experiment: the source of ``--help``."""
    return describe_fields(cls, prefix)


def load(path: str | Path | None = None, overrides: list[str] = ()) -> ExperimentConfig:
    """Load a YAML experiment file (or the defaults) and apply ``group.field=value`` overrides."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise BabeltuneError(f"{path}: cannot read config: {err.strerror}") from None
        try:
            data = load_yaml(text) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            raise BabeltuneError(f"{path}{line}: invalid YAML: {getattr(err, 'problem', err)}") from None
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise BabeltuneError(f"override {item!r}: expected group.field=value")
        apply_override(data, key.removeprefix("--"), raw)
    try:
        cfg = from_dict(ExperimentConfig, data)
        cfg.check()
    except BabeltuneError as err:
        raise BabeltuneError(f"{source}: {err}") from None
    return cfg
