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

from babeltune.registry import BabeltuneError, short, unknown_name_error


def setting(
    default: Any,
    help: str,
    *,
    affects_result: bool = True,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    nonempty: bool = False,
    distinct: bool = False,
) -> Any:
    """A dataclass field with help text; mutable defaults are copied per instance.

    ``affects_result=False`` marks plumbing (how fast or where, never what): it is left out of task keys.
    ``ge``/``gt``/``le`` bound a number, ``nonempty``/``distinct`` a list (a grid axis with no value, or one
    value twice): checked when the config loads, with the field's name.
    """
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le)) if v is not None}
    bounds |= {k: True for k, on in (("nonempty", nonempty), ("distinct", distinct)) if on}
    meta = {"help": help, "affects_result": affects_result, "bounds": bounds}
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
        if len(value) > 100:
            raise yaml.constructor.ConstructorError(
                None, None, f"a number of {len(value)} digits", node.start_mark
            )
        return int(value, 0) if value.startswith(("0o", "0x")) else int(value, 10)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        """A key given twice is an error, not a silent last-one-wins."""
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {short(key)}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


for _tag, _pattern, _first in _RESOLVERS:
    Yaml12Loader.add_implicit_resolver(_tag, re.compile(f"^(?:{_pattern})$"), list(_first))
Yaml12Loader.add_constructor(_INT, Yaml12Loader.construct_yaml_int)


MAX_YAML_VALUES = 100_000  # after aliases are expanded: a 283-byte "billion laughs" stops here
MAX_YAML_DEPTH = 100


def _expanded_size(root: yaml.Node) -> int:
    """How many values the document holds once every alias is expanded, without expanding it (and
    without recursion: 20,000 nested lists are fine to measure)."""
    size: dict[int, int] = {}
    stack = [(root, False, 1)]
    while stack:
        node, children_done, depth = stack.pop()
        if id(node) in size:
            continue
        kids = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else (
            node.value if isinstance(node, yaml.SequenceNode) else [])  # fmt: skip
        if children_done:
            size[id(node)] = min(1 + sum(size[id(k)] for k in kids), MAX_YAML_VALUES + 1)
            if size[id(node)] > MAX_YAML_VALUES:
                raise BabeltuneError(f"more than {MAX_YAML_VALUES:,} values once its aliases are expanded")
            continue
        if depth > MAX_YAML_DEPTH:
            raise BabeltuneError(f"nested more than {MAX_YAML_DEPTH} levels deep")
        stack.append((node, True, depth))
        stack += [(k, False, depth + 1) for k in kids if id(k) not in size]
    return size[id(root)]


_NOT_BRACKETS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\'\'|[^\'])*\'|(?:^|\s)#[^\n]*')


def _flow_depth(text: str) -> int:
    """How deep ``[`` and ``{`` nest, outside quotes and comments: measured before parsing, since PyYAML's
    scanner slows down with every open bracket (20,000 of them take seconds to reach its recursion limit).

    >>> _flow_depth("a: [[1, 2], {b: '[[['}]  # [[[")
    2
    """
    depth = deepest = 0
    for ch in _NOT_BRACKETS.sub("", text):
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def load_yaml(text: str) -> Any:
    """Parse YAML with the 1.2 core schema; duplicate keys, alias bombs and absurd nesting are errors.

    >>> load_yaml("languages: [en, no, on]\\nflag: true\\nlr: 1e-3\\nn: 010\\nversion: 1.10")
    {'languages': ['en', 'no', 'on'], 'flag': True, 'lr': 0.001, 'n': 10, 'version': 1.1}
    """
    if _flow_depth(text) > MAX_YAML_DEPTH:
        raise BabeltuneError(f"nested more than {MAX_YAML_DEPTH} levels deep")
    loader = Yaml12Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node)
        return loader.construct_document(node)
    except RecursionError:  # the composer recurses per level
        raise BabeltuneError(f"nested more than {MAX_YAML_DEPTH} levels deep") from None
    finally:
        loader.dispose()


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False, allow_unicode=True)


# --- plain data <-> dataclasses ------------------------------------------------------------------------


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Build dataclass ``cls`` from plain data, naming the offending field on any error."""
    if not isinstance(data, dict):
        raise BabeltuneError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    if hasattr(cls, "spelled_flat"):  # a group that also takes some settings nested (train: {full: {...}})
        data = cls.spelled_flat(data, where)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        name = str(key) if str(key).isidentifier() else short(key)  # a key with a newline stays on one line
        path = f"{where}.{name}" if where else name
        if key not in fields:
            raise BabeltuneError(f"{path}: {unknown_name_error('field', str(key), fields)}")
        kwargs[key] = _check_bounds(
            _convert(hints[key], value, path), fields[key].metadata.get("bounds"), path
        )
    return cls(**kwargs)


def _check_bounds(value: Any, bounds: dict | None, path: str) -> Any:
    """A number within its field's declared range, or an error naming the field.

    >>> _check_bounds(0, {"ge": 1}, "generate.batch_size")
    Traceback (most recent call last):
    babeltune.registry.BabeltuneError: generate.batch_size: must be at least 1, got 0
    """
    if bounds and isinstance(value, list):
        return _check_items(value, bounds, path)
    if not bounds or not isinstance(value, int | float) or isinstance(value, bool):
        return value
    if "ge" in bounds and value < bounds["ge"]:
        raise BabeltuneError(f"{path}: must be at least {bounds['ge']}, got {short(value)}")
    if "gt" in bounds and value <= bounds["gt"]:
        raise BabeltuneError(f"{path}: must be more than {bounds['gt']}, got {short(value)}")
    if "le" in bounds and value > bounds["le"]:
        raise BabeltuneError(f"{path}: must be at most {bounds['le']:,}, got {short(value)}")
    return value


def _check_items(value: list, bounds: dict, path: str) -> list:
    """A list that a grid or a stage needs at least one of, each once.

    >>> _check_items(["en", "es", "es"], {"distinct": True}, "data.languages")
    Traceback (most recent call last):
    babeltune.registry.BabeltuneError: data.languages: 'es' twice
    """
    if bounds.get("nonempty") and not value:
        raise BabeltuneError(f"{path}: give at least one")
    if bounds.get("distinct"):
        seen = set()
        for item in value:
            key = json.dumps(item, sort_keys=True, default=str)
            if key in seen:
                raise BabeltuneError(f"{path}: {short(item)} twice")
            seen.add(key)
    return value


def _convert(tp: Any, value: Any, path: str) -> Any:
    if tp is Any:  # checked where it is used (a sweep's values: as the setting they are swept over)
        return value
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
            raise BabeltuneError(f"{path}: expected a mapping, got {short(value)}")
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
            raise BabeltuneError(f"{path}: expected true or false, got {short(value)}")
        return value
    if tp in (int, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or (tp is int and value != int(value)):
            raise BabeltuneError(
                f"{path}: expected {'an integer' if tp is int else 'a number'}, got {short(value)}"
            )
        return tp(value)
    if tp is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise BabeltuneError(f"{path}: expected a string, got {short(value)}")
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
    >>> apply_override(d, "train.epochs.x", "1")
    Traceback (most recent call last):
    babeltune.registry.BabeltuneError: train.epochs is a value, not a group of settings
    """
    keys = dotted.split(".")
    try:
        value = load_yaml(raw) if raw != "" else ""
    except yaml.YAMLError as err:
        raise BabeltuneError(
            f"invalid YAML value {short(raw)}: {getattr(err, 'problem', None) or err}"
        ) from None
    node: Any = data
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        where = ".".join(keys[:depth])
        if isinstance(node, list):
            if not key.isdigit() or int(key) > len(node):
                raise BabeltuneError(
                    f"{where}: no item {short(key)} (it has {len(node)}; {len(node)} adds one)"
                )
            if int(key) == len(node):
                node.append({})
            key = int(key)
        elif not isinstance(node, dict):
            raise BabeltuneError(f"{where} is a value, not a group of settings")
        if last:
            node[key] = value
        else:
            node = node[key] if isinstance(node, list) else node.setdefault(key, {})


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
        bounds = f.metadata.get("bounds", {})
        note = "".join(
            f" [{sign} {bounds[k]:,}]" for k, sign in (("ge", ">="), ("gt", ">"), ("le", "<=")) if k in bounds
        )
        if not f.metadata.get("affects_result", True):
            note += " (cannot change a result: redoes nothing)"
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
