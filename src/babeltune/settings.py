"""Typed settings, shared by every stage: dataclass fields with help text, YAML 1.2 loading, ``a.b=value``
overrides, and the content key of a job.

A field says on itself whether it can change a result (``affects_result``). Concurrency, timeouts, retries,
prices, threads and trackers cannot, so they stay out of every task key: changing them redoes nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import field
from pathlib import Path
from typing import Any, Literal

import yaml

from babeltune.registry import BabeltuneError, unknown_name_error


def setting(default: Any, help: str, *, affects_result: bool = True) -> Any:
    """A dataclass field with help text; mutable defaults are copied per instance.

    ``affects_result=False`` marks plumbing (how fast or where, never what): it is left out of task keys.
    """
    meta = {"help": help, "affects_result": affects_result}
    if isinstance(default, list | dict):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    if dataclasses.is_dataclass(default):
        return field(default_factory=type(default), metadata=meta)
    return field(default=default, metadata=meta)


# --- YAML 1.2 core schema: only true/false are booleans, 1e-3 is a number ------------------------------

_BOOL, _INT, _FLOAT = (f"tag:yaml.org,2002:{t}" for t in ("bool", "int", "float"))
_RESOLVERS = [
    (_BOOL, r"true|True|TRUE|false|False|FALSE", "tTfF"),
    (_INT, r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
    (_FLOAT, r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
     "-+0123456789."),
]  # fmt: skip


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's core schema instead of 1.1's: ``no``, ``yes``, ``on`` and
    ``off`` stay strings (Norwegian is a language, not False), ``1e-3`` is a number, ``010`` is ten."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _INT, _FLOAT)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_yaml_int(self, node: yaml.Node) -> int:
        value = self.construct_scalar(node)
        return int(value, 0) if value.startswith(("0o", "0x")) else int(value, 10)


for _tag, _pattern, _first in _RESOLVERS:
    Yaml12Loader.add_implicit_resolver(_tag, re.compile(f"^(?:{_pattern})$"), list(_first))
Yaml12Loader.add_constructor(_INT, Yaml12Loader.construct_yaml_int)


def load_yaml(text: str) -> Any:
    """Parse YAML with the 1.2 core schema.

    >>> load_yaml("languages: [en, no, on]\\nflag: true\\nlr: 1e-3\\nn: 010\\nversion: 1.10")
    {'languages': ['en', 'no', 'on'], 'flag': True, 'lr': 0.001, 'n': 10, 'version': 1.1}
    """
    return yaml.load(text, Loader=Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False, allow_unicode=True)


# --- plain data <-> dataclasses ------------------------------------------------------------------------


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Build dataclass ``cls`` from plain data, naming the offending field on any error."""
    if not isinstance(data, dict):
        raise BabeltuneError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        name = str(key) if str(key).isidentifier() else repr(key)  # a key with a newline stays on one line
        path = f"{where}.{name}" if where else name
        if key not in names:
            raise BabeltuneError(f"{path}: {unknown_name_error('field', str(key), names)}")
        kwargs[key] = _convert(hints[key], value, path)
    return cls(**kwargs)


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, path)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin is dict:
        if not isinstance(value, dict):
            raise BabeltuneError(f"{path}: expected a mapping, got {value!r}")
        return {str(k): _convert(args[1], v, f"{path}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            value = [value]  # a single item where a list is expected
        return [_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is Literal:
        if value not in args:
            raise BabeltuneError(f"{path}: {unknown_name_error('value', str(value), map(str, args))}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise BabeltuneError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp in (int, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or (tp is int and value != int(value)):
            raise BabeltuneError(
                f"{path}: expected {'an integer' if tp is int else 'a number'}, got {value!r}"
            )
        return tp(value)
    if tp is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise BabeltuneError(f"{path}: expected a string, got {value!r}")
        return str(value)
    if tp is Path:
        return Path(_convert(str, value, path))
    raise TypeError(f"unsupported settings type {tp} at {path}")


def to_dict(obj: Any) -> Any:
    """Plain data for YAML/JSON: dataclasses become dicts, paths become strings."""
    return _plain(obj)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def apply_override(data: dict, dotted: str, raw: str) -> None:
    """Set ``a.b.c=value`` in nested plain data; list items are addressed by index (``models.0.name``).

    >>> d = {"train": {"epochs": 2}}
    >>> apply_override(d, "train.epochs", "1"); d
    {'train': {'epochs': 1}}
    >>> apply_override(d, "test.languages", "[en, no]"); d["test"]
    {'languages': ['en', 'no']}
    """
    keys = dotted.split(".")
    node: Any = data
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    value = load_yaml(raw) if raw != "" else ""
    if isinstance(node, list):
        node[int(keys[-1])] = value
    else:
        node[keys[-1]] = value


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted name, default, help) for every leaf field: the source of ``--help`` listings."""
    rows = []
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        tp = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            rows += describe(tp, f"{name}.")
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if isinstance(default, list) and default and dataclasses.is_dataclass(default[0]):
            rows += describe(type(default[0]), f"{name}.N.")
            continue
        note = "" if f.metadata.get("affects_result", True) else " (cannot change a result: redoes nothing)"
        rows.append((name, repr(default), f.metadata.get("help", "") + note))
    return rows


# --- content keys -------------------------------------------------------------------------------------


def result_fields(obj: Any) -> Any:
    """Plain data of what can change a result: fields marked ``affects_result=False`` are left out.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Job:
    ...     lr: float = setting(0.1, "learning rate")
    ...     threads: int = setting(4, "CPU threads", affects_result=False)
    >>> result_fields(Job())
    {'lr': 0.1}
    """
    if dataclasses.is_dataclass(obj):
        return {
            f.name: result_fields(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if f.metadata.get("affects_result", True)
        }
    if isinstance(obj, list | tuple):
        return [result_fields(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): result_fields(v) for k, v in obj.items()}
    return str(obj) if isinstance(obj, Path) else obj


def content_key(*parts: Any) -> str:
    """A short, stable hash of ``parts`` (their result fields only)."""
    blob = json.dumps(result_fields(list(parts)), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
