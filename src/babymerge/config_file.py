"""Settings from a YAML file under one precedence rule: given values (flags) over the file over the defaults.

Every stage whose settings are a pydantic model (training, sweep, demo, features, tokenizer, init, evaluation)
loads them here. Relative paths in the file resolve against the file's folder, so a config means the same
from any working directory; given values are used as they are. A dict field (``method_parameters``,
``trainer_args``) is merged key by key, given values winning. Light: yaml and pydantic only.
"""

from __future__ import annotations

import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import BabymergeError

Model = TypeVar("Model", bound=BaseModel)


def is_path_field(annotation: Any) -> bool:
    """Whether a field holds a path (``Path`` or ``Path | None``)."""
    if annotation is Path:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return Path in typing.get_args(annotation)
    return False


def merged(base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` over ``base``, dict values merged recursively."""
    out = dict(base)
    for key, value in given.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_yaml(model: type[BaseModel], path: Path) -> dict[str, Any]:
    """The mapping in ``path``, its relative path fields resolved against the file's folder."""
    import yaml

    what = model.__name__
    if not path.is_file():
        raise BabymergeError(f"{path}: {what} file not found")
    try:
        fields = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise BabymergeError(f"{path}: cannot read the {what} file ({' '.join(str(error).split())[:200]})") from None
    if not isinstance(fields, dict):
        raise BabymergeError(f"{path}: expected a mapping of {what} fields, found {type(fields).__name__}")
    for name, field in model.model_fields.items():
        if isinstance(fields.get(name), str) and is_path_field(field.annotation):
            fields[name] = (path.parent / Path(fields[name]).expanduser()).resolve()
    return fields


def load_config(
    model: type[Model],
    path: str | os.PathLike | None = None,
    given: dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
) -> Model:
    """``model`` from ``given`` values (``None``: not given) over the YAML file ``path`` (optional) over
    ``defaults`` (a command's own defaults, e.g. the sweep's store inside ``--out``) over the model's defaults.

    An invalid file names the file and the field; a missing required field names its flag and YAML key.
    """
    path = Path(path) if path is not None else None
    given = {k: v for k, v in (given or {}).items() if v is not None}
    fields = merged(merged(defaults or {}, read_yaml(model, path) if path is not None else {}), given)
    try:
        return model.model_validate(fields)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        if first["type"] == "missing" and len(first["loc"]) == 1:
            flag = f"--{where.replace('_', '-')}"
            raise BabymergeError(f"{flag} is required (or `{where}:` in the --config file)") from None
        if path is None or first["loc"][:1] and first["loc"][0] in given:
            raise  # a given value: the command line reports it
        raise BabymergeError(f"{path}: field {where}: {first['msg']}") from None
