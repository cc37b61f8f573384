"""Safe YAML loading and pydantic-error formatting shared by the config floor.

YAML is data here: `yaml.safe_load` only, nothing in a file is evaluated as code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from recipe_opt.exceptions import ConfigError, ConfigProblem

__all__ = ["load_yaml", "load_yaml_mapping", "problems_from_validation_error", "validate_fields", "validate_model"]

M = TypeVar("M", bound=BaseModel)


class _DuplicateKey(Exception):
    def __init__(self, key: object, first: int, again: int) -> None:
        self.key, self.first, self.again = key, first, again


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.safe_load`, except that a key given twice in one mapping is an error: YAML's own rule
    is that the last one silently wins, so `n_trials: 3` then `n_trials: 500` would run 500."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` overrides on purpose
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: construct_mapping names it
            break
        if first is not None:
            raise _DuplicateKey(key, first, key_node.start_mark.line + 1)
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_yaml(text: str) -> Any:
    """Parse YAML as data (safe tags only), refusing duplicate keys (`ValueError` naming both lines)."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except _DuplicateKey as exc:
        raise ValueError(f"duplicate key {exc.key!r}: on line {exc.first} and again on line {exc.again}") from None


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; any failure is a one-line `ConfigError`."""
    source = str(path)
    p = Path(path)
    if not p.is_file():
        raise ConfigError.single(source, "", "file not found" if not p.exists() else "not a file")
    try:
        data = load_yaml(p.read_text(encoding="utf-8-sig"))
    except ValueError as exc:
        raise ConfigError.single(source, "", str(exc)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError.single(source, where, f"not valid YAML: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError.single(source, "", "not a UTF-8 text file") from None
    if data is None:
        raise ConfigError.single(source, "", "file is empty")
    if not isinstance(data, dict):
        raise ConfigError.single(source, "", f"top level must be a mapping, but got {type(data).__name__}")
    return data


def _format_loc(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        # pydantic puts the tag of a tagged union / the function name of a validator in the path;
        # users never wrote those, so they are dropped.
        elif item.startswith(("function-", "type=")) or "[" in item:
            continue
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts)


def problems_from_validation_error(source: str, exc: ValidationError) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors(include_url=False):
        field = _format_loc(tuple(err["loc"]))
        kind = err["type"]
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required field is missing"
        else:
            message = err["msg"]
            if message.startswith("Value error, "):
                message = message[len("Value error, ") :]
            # A validator's own message that already shows the value ("..., but got ...") is complete.
            if "input" in err and kind not in ("model_type", "dict_type") and message and "but got" not in message:
                shown = repr(err["input"])
                if len(shown) <= 60 and shown not in message:
                    message += f" (got {shown})"
        if (field, message) not in seen:
            seen.add((field, message))
            problems.append(ConfigProblem(source, field, message))
    return problems


def validate_fields(
    model: type[BaseModel], data: dict[str, Any], source: str
) -> tuple[dict[str, Any], list[ConfigProblem]]:
    """Validate each top-level field on its own, so one bad field does not hide the others.

    Returns the fields that parsed (defaults filled in for absent optional ones) and the
    problems: unknown keys, missing required fields, and each field's own errors.
    """
    from pydantic import TypeAdapter

    problems = [ConfigProblem(source, key, "unknown key") for key in data if key not in model.model_fields]
    parsed: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name not in data:
            if info.is_required():
                problems.append(ConfigProblem(source, name, "required field is missing"))
            else:
                parsed[name] = info.get_default(call_default_factory=True)
            continue
        try:
            parsed[name] = TypeAdapter(info.rebuild_annotation()).validate_python(data[name])
        except ValidationError as exc:
            for problem in problems_from_validation_error(source, exc):
                field = name + (
                    "." + problem.field if problem.field and not problem.field.startswith("[") else problem.field
                )
                problems.append(ConfigProblem(source, field, problem.message))
    return parsed, problems


def validate_model(model: type[M], data: dict[str, Any], source: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems_from_validation_error(source, exc)) from None
