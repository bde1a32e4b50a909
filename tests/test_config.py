"""Config: strict dataclasses, safe YAML, dotted overrides, clear one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import dfkd
from dfkd.config import RunConfig, build_config, load_yaml, parse_overrides
from dfkd.errors import ConfigError


def test_method_defaults_and_dataset_presets_apply() -> None:
    cfg = dfkd.resolve_config("kd", "digits")
    assert cfg.source.name == "real" and cfg.g_steps == 0
    assert cfg.distill_terms["kd_kl"]["T"] == 4.0
    assert cfg.kd_steps == 12  # the digits preset
    assert dfkd.resolve_config("kd", "mnist10k").kd_steps == 63


def test_precedence_file_then_overrides_then_explicit(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("rounds: 7\nbatch_size: 32\noptimizer:\n  lr: 0.01\n")
    cfg = dfkd.resolve_config("kd", "digits", f, ["rounds=9", "distill_terms.kd_kl.T=2"], seed=5)
    assert (cfg.rounds, cfg.batch_size, cfg.optimizer.lr, cfg.seed) == (9, 32, 0.01, 5)
    assert cfg.distill_terms["kd_kl"] == {"weight": 0.9, "T": 2}
    assert cfg.optimizer.momentum == 0.9  # untouched defaults survive the merge


def test_unknown_key_is_suggested() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown config key 'optimiser'; did you mean 'optimizer'\?"
    ):
        build_config({"optimiser": {"lr": 0.1}})
    with pytest.raises(ConfigError, match=r"unknown config key 'optimizer.learning_rate'"):
        build_config({"optimizer": {"learning_rate": 0.1}})


@pytest.mark.parametrize(
    ("layer", "msg"),
    [
        ({"rounds": "ten"}, r"'rounds' must be int, got str"),
        ({"rounds": 2.5}, r"'rounds' must be int"),
        ({"progress": "yes"}, r"'progress' must be bool"),
        ({"optimizer": {"lr": "fast"}}, r"'optimizer.lr' must be float"),
        ({"optimizer": 3}, r"'optimizer' must be a mapping"),
        ({"rounds": 0}, r"'rounds' must be ≥ 1"),
        ({"distill_terms": {"kd_kl": {"weight": "x"}}}, r"weight' must be a number"),
    ],
)
def test_wrong_types_are_one_line_errors(layer, msg) -> None:
    with pytest.raises(ConfigError, match=msg) as e:
        build_config(layer)
    assert "\n" not in str(e.value)


def test_exponent_floats_without_a_dot_are_floats(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("optimizer:\n  weight_decay: 1e-4\n")
    cfg = dfkd.resolve_config(
        "kd", "digits", f, ["optimizer.lr=5E-3", "distill_terms.ce.weight=1e-2"]
    )
    assert cfg.optimizer.weight_decay == 1e-4 and cfg.optimizer.lr == 5e-3
    assert cfg.distill_terms["ce"]["weight"] == 1e-2
    with pytest.raises(ConfigError, match="must be float"):
        build_config({"optimizer": {"lr": "1e-4x"}})


def test_ints_are_accepted_as_floats_and_shorthands() -> None:
    cfg = build_config({"optimizer": {"lr": 1}, "source": "real", "plugins": [], "student": "mlp"})
    assert (
        isinstance(cfg.optimizer.lr, float)
        and cfg.source.name == "real"
        and cfg.student.name == "mlp"
    )


def test_malformed_yaml_and_non_mapping(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rounds: [1, 2\nseed: 3\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line"):
        load_yaml(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_yaml(lst)
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "none.yaml")


def test_yaml_never_executes_code(tmp_path: Path) -> None:
    evil = tmp_path / "evil.yaml"
    evil.write_text("rounds: !!python/object/apply:os.system ['touch /tmp/dfkd-yaml-evil']\n")
    with pytest.raises(ConfigError, match="YAML tag that can build Python objects"):
        load_yaml(evil)
    assert not Path("/tmp/dfkd-yaml-evil").exists()


def test_overrides_parse_values_as_yaml() -> None:
    o = parse_overrides(["a.b=1", "a.c=0.5", "d=true", "e=[1, 2]", "f=text"])
    assert o == {"a": {"b": 1, "c": 0.5}, "d": True, "e": [1, 2], "f": "text"}
    with pytest.raises(ConfigError, match=r"must look like key\.sub=value"):
        parse_overrides(["novalue"])


def test_unknown_method_is_suggested() -> None:
    with pytest.raises(ConfigError, match=r"unknown method 'kdd'; did you mean 'kd'\?"):
        dfkd.resolve_config("kdd", "digits")


def test_resolved_config_round_trips_through_yaml(tmp_path: Path) -> None:
    cfg = dfkd.resolve_config("kd", "digits", overrides=["seed=3"])
    f = tmp_path / "c.yaml"
    f.write_text(cfg.to_yaml())
    assert build_config(load_yaml(f)) == cfg
    assert isinstance(cfg, RunConfig)


def test_example_config_is_valid_and_complete() -> None:
    path = Path(__file__).parents[1] / "configs" / "example.yaml"
    data = load_yaml(path)
    cfg = build_config(data)
    derived = {"method", "teacher", "teacher_weights", "preset"}  # set by flags / resolution
    assert set(data) == set(RunConfig().to_dict()) - derived
    assert cfg.optimizer.weight_decay == 5e-4 and cfg.source.args["shift"] == 0


def test_api_dict_config_accepts_shorthands() -> None:
    cfg = dfkd.resolve_config(config={"method": "kd", "data": "mnist10k", "source": "real"})
    assert cfg.data.name == "mnist10k" and cfg.kd_steps == 63  # the mnist10k preset applied
