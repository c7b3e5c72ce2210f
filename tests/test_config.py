"""Configuration files: every shipped config loads; bad ones name file, key and rule."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from assimilate.config import ConfigError, load_config
from tests.conftest import REPO, TINY_KOLMOGOROV, TINY_KS, write_config

EXPERIMENTS = sorted(p for p in (REPO / "configs").glob("*.yaml") if p.name != "regimes.yaml")


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    config = load_config(path)
    if config.simulator.pde == "imported":  # data, not a simulator: its grid stands alone
        from assimilate.da.inputs.fields import grid_of

        assert grid_of(config).space == tuple(config.simulator.grid)
        with pytest.raises(ConfigError, match="model=forecaster"):
            config.simulator.build()
        return
    simulator = config.simulator.build()
    assert simulator.pde == config.simulator.pde


def _broken(tmp_path: Path, base: dict, section: str, key: str, value) -> str:
    data = copy.deepcopy(base)
    data[section][key] = value
    path = write_config(tmp_path, data, "broken.yaml")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "broken.yaml" in message
    return message


def test_unknown_key_lists_allowed_keys(tmp_path: Path) -> None:
    message = _broken(tmp_path, TINY_KS, "simulator", "viscosity", 0.1)
    assert "simulator.viscosity" in message and "unknown key" in message
    assert "n_points" in message and "length" in message




def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    message = _broken(tmp_path, TINY_KS, "dataset", "steps", "many")
    assert "dataset.steps" in message and "'many'" in message


def test_negative_reynolds(tmp_path: Path) -> None:
    message = _broken(tmp_path, TINY_KOLMOGOROV, "simulator", "reynolds", -5.0)
    assert "simulator.reynolds" in message and "greater than 0" in message


def test_unstable_ks_time_step(tmp_path: Path) -> None:
    data = copy.deepcopy(TINY_KS)
    data["simulator"].update(dt=1.0, interval=1.0)
    path = write_config(tmp_path, data, "broken.yaml")
    with pytest.raises(ConfigError, match="key 'simulator.dt'.*unstable time step"):
        load_config(path)


def test_unstable_kolmogorov_time_step(tmp_path: Path) -> None:
    message = _broken(tmp_path, TINY_KOLMOGOROV, "simulator", "dt", 0.5)
    assert "key 'simulator.dt'" in message and "allowed: 0 < dt <=" in message


def test_grid_the_solver_cannot_use(tmp_path: Path) -> None:
    message = _broken(tmp_path, TINY_KOLMOGOROV, "simulator", "stored_grid", 32)
    assert "key 'simulator.stored_grid'" in message
    message = _broken(tmp_path, TINY_KOLMOGOROV, "simulator", "solver_grid", 17)
    assert "solver_grid" in message


def test_unknown_pde_lists_choices(tmp_path: Path) -> None:
    message = _broken(tmp_path, TINY_KS, "simulator", "pde", "burgers")
    assert "kolmogorov" in message and "kuramoto_sivashinsky" in message


def test_missing_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("simulator: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def test_unknown_top_level_section(tmp_path: Path) -> None:
    data = copy.deepcopy(TINY_KS) | {"simulater": {}}
    path = write_config(tmp_path, data, "broken.yaml")
    with pytest.raises(ConfigError, match="simulater.*unknown key.*simulator"):
        load_config(path)
