"""params.yaml: profile overlays and schema validation with one clear message per bad key.

Used by the Snakefile (and tests); stage CLIs never read params.yaml, they get their slice.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "params.schema.yaml"
PROFILES = REPO / "workflow" / "profiles"


class ConfigError(ValueError):
    """A bad params.yaml key; the message names the key."""


def deep_merge(base: dict, overlay: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def validate(config: dict, schema_path: Path = SCHEMA) -> None:
    schema = yaml.safe_load(schema_path.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    err = errors[0]
    where = _key_path(err)
    if err.validator == "additionalProperties":
        known = sorted(err.schema.get("properties", {}))
        unknown = sorted(set(err.instance) - set(known))
        prefix = f"{where}." if err.absolute_path else ""
        raise ConfigError(f"params.yaml: unknown key '{prefix}{unknown[0]}' (known keys here: {', '.join(known)})")
    if err.validator == "required":
        raise ConfigError(f"params.yaml: missing key in '{where}': {err.message}")
    raise ConfigError(f"params.yaml: bad value for '{where}': {err.message}")


def overlay(profile: str, seen: tuple[str, ...] = ()) -> dict:
    """A profile's overlay with the overlays it names under `base` merged first, in order (paper-smoke: the
    paper profile at the smoke profile's sizes); {} for tiny, which is params.yaml itself."""
    if profile == "tiny":
        return {}
    path = PROFILES / profile / "params.yaml"
    if not path.is_file():
        raise ConfigError(f"params.yaml: unknown profile '{profile}' (no {path.relative_to(REPO)})")
    if profile in seen:
        raise ConfigError(f"{path.relative_to(REPO)}: base profiles loop ({' -> '.join(seen + (profile,))})")
    own = yaml.safe_load(path.read_text()) or {}
    merged = {}
    for base in own.pop("base", []):
        merged = deep_merge(merged, overlay(str(base), seen + (profile,)))
    return deep_merge(merged, own)


def resolve(config: dict) -> dict:
    """Merge the profile overlay over the base config and validate the result."""
    config = deep_merge(config, overlay(str(config.get("profile", "tiny"))))
    validate(config)
    return config


def load(params_file: Path = REPO / "params.yaml", **overrides) -> dict:
    config = yaml.safe_load(Path(params_file).read_text())
    config.update(overrides)
    return resolve(config)


def stage_config(config: dict, name: str) -> dict:
    """A training stage's config: the model plus the common train keys overridden by the stage's own."""
    return {"model": config["model"], "stage": {**config["train"]["common"], **config["train"][name]}}


def slice_json(config: dict, key: str) -> str:
    """The JSON of one dotted config slice, as passed to a stage CLI (stable key order)."""
    node = config
    for part in key.split("."):
        if part not in node:
            raise ConfigError(f"params.yaml: missing key '{key}'")
        node = node[part]
    return json.dumps(node, sort_keys=True)
