"""Strict YAML <-> dataclass configuration."""
import pytest

from nbf_ros.config import ConfigError, NbfConfig, load_config, save_config


def test_defaults_round_trip(tmp_path):
    path = tmp_path / "c.yaml"
    save_config(NbfConfig(), path)
    assert load_config(path) == NbfConfig()


def test_partial_file_overrides_only_given_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("fit:\n  max_iters: 7\n")
    cfg = load_config(path)
    assert cfg.fit.max_iters == 7 and cfg.net == NbfConfig().net


@pytest.mark.parametrize("text, fragment", [
    ("fit:\n  max_iter: 7\n", "unknown key"),
    ("fit:\n  max_iters: seven\n", "expected an integer"),
    ("inference:\n  backend: cuda\n", "not one of"),
    ("fit: [1, 2]\n", "expected a mapping"),
    ("fit: {max_iters: 3\n", "not valid YAML"),
])
def test_bad_files_name_the_problem(tmp_path, text, fragment):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
