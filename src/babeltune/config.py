"""The experiment's configuration: the stages' settings groups composed into one, loaded from YAML (plus
``--group.field=value`` overrides), and the checks that span groups.

Each group lives beside the stage whose registries give its names meaning, and checks them there
(``mix.MixArgs``, ``train.TrainArgs``, ...); they are re-exported here. The typed YAML <-> dataclass code
is ``babeltune.settings``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, replace
from itertools import product
from pathlib import Path
from typing import Any

import yaml

from babeltune import axes
from babeltune.data.stage import DataArgs, TestArgs
from babeltune.evaluate.judge import JudgeArgs
from babeltune.evaluate.stage import EvaluateArgs
from babeltune.generate import GenerateArgs
from babeltune.io import regular_file
from babeltune.langid import LangIdArgs
from babeltune.methods import METHODS
from babeltune.mix import MixArgs
from babeltune.models import ModelArgs, check_lora_targets
from babeltune.registry import BabeltuneError, short, unknown_name_error
from babeltune.report.stage import ReportArgs
from babeltune.settings import apply_override, dump_yaml, from_dict, load_yaml, setting, to_dict
from babeltune.settings import describe as describe_fields
from babeltune.slurm_settings import SlurmArgs
from babeltune.train.settings import LoraArgs, TrainArgs
from babeltune.translate.stage import TranslateArgs

__all__ = [
    "DataArgs", "EvaluateArgs", "ExperimentConfig", "GenerateArgs", "JudgeArgs", "LangIdArgs", "LoraArgs",
    "MixArgs", "ModelArgs", "ReportArgs", "SlurmArgs", "TestArgs", "TrainArgs", "TranslateArgs", "apply_override",
    "describe", "dump_yaml", "from_dict", "load", "to_dict",
]  # fmt: skip


@dataclass
class ExperimentConfig:
    name: str = setting(
        "experiment", "experiment name; also the default output folder name", affects_result=False
    )
    output_dir: str | None = setting(None, "run directory (default: runs/<name>)", affects_result=False)
    models: list[ModelArgs] = setting([ModelArgs()], "base models in the grid", nonempty=True)
    data: DataArgs = setting(DataArgs(), "training data")
    translate: TranslateArgs = setting(TranslateArgs(), "machine translation of the training data")
    test: TestArgs = setting(TestArgs(), "test prompts")
    mix: MixArgs = setting(MixArgs(), "training mixtures under a budget")
    lora: LoraArgs = setting(LoraArgs(), "LoRA settings")
    train: TrainArgs = setting(TrainArgs(), "fine-tuning")
    generate: GenerateArgs = setting(GenerateArgs(), "answer generation")
    evaluate: EvaluateArgs = setting(EvaluateArgs(), "evaluation")
    report: ReportArgs = setting(ReportArgs(), "report")
    slurm: SlurmArgs = setting(SlurmArgs(), "the site's Slurm: partition, account, resources, requeues")
    sweep: dict[str, list[Any]] = setting(
        {}, "more axes of the grid: a setting's path -> its values, e.g. {train.learning_rate: [1e-4, 3e-4], "
        "mix.budget: [1000, 5000]}; the grid is their product with models x methods x mixtures, and tasks "
        "whose jobs are equal are shared (a learning-rate sweep builds the data and mixtures once)")  # fmt: skip
    seeds: list[int] = setting(
        [], "training seeds (train.seed: initialisation, data order, dropout) as one more axis: every run of "
        "the grid once per seed", distinct=True)  # fmt: skip

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir or f"runs/{self.name}")

    def check(self) -> None:
        """Each group checks its own names; what spans groups is checked here."""
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.name) or ".." in self.name:
            raise BabeltuneError(
                f"name: {short(self.name)} is not a plain folder name (letters, digits, '.', '_', '-'); "
                "set output_dir to put a run elsewhere"
            )
        self.data.check("data")
        self.test.check("test")
        self.mix.check("mix", self.data.languages)
        for i, model in enumerate(self.models):
            model.check(f"models[{i}]")
        self.train.check("train")
        self.generate.check("generate")
        self.evaluate.check("evaluate")
        self.slurm.check("slurm")
        if self.translate.enabled:
            self.translate.check("translate")
            if self.data.source_language not in self.data.languages:
                raise BabeltuneError(
                    "data.source_language: must be one of data.languages when translate.enabled"
                )
        if self.lora.target_modules and any(
            METHODS.get(m).settings_group == "lora" for m in self.train.methods
        ):
            for model in self.models:
                check_lora_targets(self.lora.target_modules, model.name, "lora.target_modules")
        if self.axes():
            variants(self)  # each value of each axis makes a valid experiment, or the error names it

    def axes(self) -> dict[str, list[Any]]:
        """The sweep's axes, the seeds as ``train.seed`` among them."""
        return dict(self.sweep) | ({axes.SEED: list(self.seeds)} if self.seeds else {})


@dataclass(frozen=True)
class Variant:
    """One combination of the sweep's values: the experiment as it runs there."""

    values: dict[str, Any]  # axis path -> value
    cfg: ExperimentConfig

    @property
    def label(self) -> str:
        """The grid point's name part, e.g. ``learning_rate=0.0001,seed=1`` ("" without a sweep)."""
        return axes.label(self.values)


NOT_AN_AXIS = ("name", "output_dir", "sweep", "seeds", "slurm")  # where or how a run goes, never what it is


def variants(cfg: ExperimentConfig) -> list[Variant]:
    """Every combination of the axes' values (the product, in order); one variant without a sweep."""
    swept = cfg.axes()
    if not swept:
        return [Variant({}, cfg)]
    base = to_dict(replace(cfg, sweep={}, seeds=[]))
    for path, values in swept.items():
        if path.split(".")[0] in NOT_AN_AXIS:
            raise BabeltuneError(
                f"sweep.{path}: not a setting to sweep (where or how a run goes, not what it is)"
            )
        _locate(base, path)
        if not values or len(set(map(repr, values))) != len(values):
            raise BabeltuneError(f"sweep.{path}: needs distinct values, got {short(values)}")
    out = []
    for combination in product(*swept.values()):
        data = copy.deepcopy(base)
        values = dict(zip(swept, combination, strict=True))
        for path, value in values.items():
            node, key = _locate(data, path)
            node[key] = value
        try:
            variant = from_dict(ExperimentConfig, data)
            variant.check()
        except BabeltuneError as err:
            where = ", ".join(f"{path}={axes.shown(v)}" for path, v in values.items())
            raise BabeltuneError(f"sweep ({where}): {err}") from None
        out.append(Variant(values, variant))
    return out


def _locate(data: dict, path: str) -> tuple[dict, str]:
    """The mapping that holds the setting at ``path``, and its key; an unknown path is an error."""
    node, keys = data, path.split(".")
    for depth, key in enumerate(keys):
        if not isinstance(node, dict):
            raise BabeltuneError(
                f"sweep.{path}: {'.'.join(keys[:depth])} is a value, not a group of settings"
            )
        if key not in node:
            raise BabeltuneError(f"sweep.{path}: {unknown_name_error('setting', key, node)}")
        if depth < len(keys) - 1:
            node = node[key]
    return node, keys[-1]


def describe(cls: type = ExperimentConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted name, default, help) for every field of the experiment: the source of ``--help``."""
    return describe_fields(cls, prefix)


MAX_CONFIG_BYTES = 1_000_000  # a config holds settings, not data


def _parse(text: str, where: str) -> dict:
    try:
        data = load_yaml(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise BabeltuneError(f"{where}{line}: invalid YAML: {getattr(err, 'problem', None) or err}") from None
    except BabeltuneError as err:
        raise BabeltuneError(f"{where}: {err}") from None
    if data is not None and not isinstance(data, dict):
        raise BabeltuneError(f"{where}: expected a mapping of settings groups, got {type(data).__name__}")
    return data or {}


def load(path: str | Path | None = None, overrides: list[str] = ()) -> ExperimentConfig:
    """Load a YAML experiment file (or the defaults) and apply ``group.field=value`` overrides."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        regular_file(Path(path), "config", MAX_CONFIG_BYTES)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise BabeltuneError(
                f"{path}: cannot read the config: {getattr(err, 'strerror', None) or err}"
            ) from None
        data = _parse(text, str(path))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise BabeltuneError(f"override {short(item)}: expected group.field=value")
        name = key.removeprefix("--")
        try:
            apply_override(data, name, raw)
        except BabeltuneError as err:
            raise BabeltuneError(f"--{name}: {err}") from None
    try:
        cfg = from_dict(ExperimentConfig, data)
        cfg.check()
    except BabeltuneError as err:
        raise BabeltuneError(f"{source}: {err}") from None
    return cfg
