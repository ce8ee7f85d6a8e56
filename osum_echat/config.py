"""Typed configuration: dataclasses are the schema, YAML is the user surface.

* ``load_config(path, overrides)`` reads a YAML file (which may name a ``base:`` file to
  inherit from, relative to itself), applies dotted overrides such as
  ``model.llm.num_layers=2`` and builds an :class:`ExperimentConfig`.
* Unknown keys and values of the wrong type raise :class:`ConfigError` naming the dotted key.
* ``to_dict(cfg)`` gives back plain data; ``save_config`` writes the resolved YAML that is
  stored next to every checkpoint.

The section dataclasses live with the code they configure (``osum_echat/model/config.py``,
``osum_echat/data/config.py``, ...); they import nothing from this module.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Iterable, TypeVar, Union

import yaml

from osum_echat.data.config import DataConfig
from osum_echat.generate.config import GenerateConfig
from osum_echat.model.config import ModelConfig
from osum_echat.text.config import TextConfig
from osum_echat.train.config import TrainConfig

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem, with the dotted key that caused it in the message."""


@dataclasses.dataclass
class ExperimentConfig:
    """Everything one run needs. Each section is optional in YAML (defaults apply)."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    text: TextConfig = dataclasses.field(default_factory=TextConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    generate: GenerateConfig = dataclasses.field(default_factory=GenerateConfig)

    def validate(self) -> None:
        # the data pipeline writes the input-speech markers and boundary the model embeds
        if self.model.speech_token_num != self.data.speech_token_num:
            raise ValueError(f"model.speech_token_num={self.model.speech_token_num} but "
                             f"data.speech_token_num={self.data.speech_token_num}; set both to the same value")


# ----------------------------------------------------------------------------------------
# dict -> dataclass with checking
# ----------------------------------------------------------------------------------------
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against annotation ``tp`` (converting int->float and dict->dataclass)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} matches none of {_type_name(tp)}")
    if typing.get_origin(tp) is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key}: {value!r} is not one of {list(typing.get_args(tp))}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping for {tp.__name__}, got {type(value).__name__}")
        return from_dict(tp, value, key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        (item_tp,) = typing.get_args(tp)[:1] or (Any,)
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        k_tp, v_tp = typing.get_args(tp) or (Any, Any)
        return {_coerce(k, k_tp, key): _coerce(v, v_tp, f"{key}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad types raise ConfigError."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"unknown config key(s) {', '.join(where + k for k in unknown)}; "
            f"valid keys of {cls.__name__}: {', '.join(sorted(names))}"
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(value, hints[name], key)
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if callable(check):
        try:
            check()
        except (ValueError, AssertionError) as err:
            raise ConfigError(f"{prefix or cls.__name__}: {err}") from None
    return obj


def to_dict(obj: Any) -> Any:
    """Dataclass tree -> plain dicts/lists (what YAML and checkpoints store)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


# ----------------------------------------------------------------------------------------
# YAML files, inheritance and overrides
# ----------------------------------------------------------------------------------------
def _deep_merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def read_yaml_tree(path: str | Path, _seen: tuple = ()) -> dict:
    """Read a YAML config, resolving ``base:`` (a path or list of paths relative to the file).

    Bases are merged first, in order; the file's own keys win. Mappings merge key by key,
    lists and scalars replace.
    """
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"circular 'base:' chain through {path}")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    bases = data.pop("base", None) or []
    if isinstance(bases, str):
        bases = [bases]
    merged: dict = {}
    for b in bases:
        merged = _deep_merge(merged, read_yaml_tree(path.parent / b, _seen + (path,)))
    return _deep_merge(merged, data)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'model.llm.num_layers=2' -> (['model','llm','num_layers'], 2). Values are YAML scalars."""
    text = text[2:] if text.startswith("--") else text
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like a.b.c=value")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key part")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({err})") from None
    return key.split("."), value


def apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    """Apply dotted overrides to a plain config dict (creating intermediate mappings)."""
    data = copy.deepcopy(data)
    for ov in overrides:
        parts, value = parse_override(ov)
        node = data
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {ov!r}: {p} is not a section")
            node = nxt
        node[parts[-1]] = value
    return data


def load_config(
    path: str | Path | None = None, overrides: Iterable[str] = (), cls: type[T] = ExperimentConfig
) -> T:
    """YAML file (+ bases) + dotted overrides -> checked config object of type ``cls``."""
    data = read_yaml_tree(path) if path is not None else {}
    data = apply_overrides(data, overrides)
    return from_dict(cls, data)


def save_config(cfg: Any, path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(to_dict(cfg), f, sort_keys=False, allow_unicode=True)


def replace(cfg: T, overrides: Iterable[str]) -> T:
    """A copy of ``cfg`` with dotted overrides applied (type-checked again)."""
    return from_dict(type(cfg), apply_overrides(to_dict(cfg), overrides))
