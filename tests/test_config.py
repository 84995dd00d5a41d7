"""Strict YAML <-> dataclass configuration."""
import dataclasses

import pytest

from nbf_ros.config import ConfigError, NbfConfig, apply_overrides, load_config, save_config


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


def test_overrides_change_only_the_given_keys():
    base = NbfConfig()
    cfg = apply_overrides(base, {"fit.max_iters": 5, "detector.fixed_box": [1, 2, 30, 40],
                                 "tracker.timeout_s": 3, "synthetic.camera.distance_m": [1.0, 2.0]})
    assert cfg.fit.max_iters == 5 and cfg.detector.fixed_box == (1.0, 2.0, 30.0, 40.0)
    assert cfg.tracker.timeout_s == 3.0 and isinstance(cfg.tracker.timeout_s, float)
    assert cfg.synthetic.camera.distance_m == (1.0, 2.0)
    assert cfg.net == base.net and cfg.fit.lr == base.fit.lr
    assert apply_overrides(base, {}) == base


@pytest.mark.parametrize("key, value, fragment", [
    ("fit.max_iterz", 3, "fit.max_iterz: unknown key"),
    ("fits.max_iters", 3, "fits.max_iters: unknown key"),
    ("fit.max_iters", "seven", "fit.max_iters: expected an integer"),
    ("fit.max_iters", True, "fit.max_iters: expected an integer"),
    ("inference.backend", "cuda", "inference.backend: 'cuda' is not one of"),
    ("detector.fixed_box", [1.0, 2.0], "detector.fixed_box: expected a list of 4"),
    ("fit", {"max_iters": 3}, "fit: fit is a section"),
    ("fit.max_iters.x", 3, "fit.max_iters is a value"),
])
def test_bad_overrides_name_the_key(key, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        apply_overrides(NbfConfig(), {key: value})


def test_defaults_are_the_pretrained_front_end_and_hog_yaml_the_previous_one():
    """NanoDet-g boxes + BlazePose keypoints (with their turn hypotheses and calibrations) by
    default; config/hog.yaml gives back exactly the earlier defaults (HOG + network heatmaps)."""
    from nbf_ros.config import PACKAGE_ROOT

    default = NbfConfig()
    assert (default.detector.kind, default.fit.keypoint_source) == ("nanodet", "blazepose")
    assert default.fit.turn_hypotheses == 4 and default.blazepose.variant == "full"
    hog = load_config(PACKAGE_ROOT / "config" / "hog.yaml")
    assert (hog.detector.kind, hog.fit.keypoint_source, hog.fit.turn_hypotheses) == ("hog", "network", 1)
    assert hog.fit.visibility_logit == (0.153, 0.0, 0.0, 3.558)
    assert (hog.fit.confidence_scale, hog.fit.confidence_offset) == (0.13, 22.295)
    assert hog.detector == dataclasses.replace(default.detector, kind="hog")  # nothing else moved


def test_every_shipped_pipeline_config_loads():
    from nbf_ros.config import PACKAGE_ROOT

    files = [p for p in sorted((PACKAGE_ROOT / "config").rglob("*.yaml")) if p.name != "nbf.yaml"]
    assert any(p.name == "hog.yaml" for p in files)
    for path in [*files, PACKAGE_ROOT / "models" / "nbf_net.yaml"]:
        load_config(path)  # strict: an unknown key or a removed detector kind would raise


def test_keys_of_the_removed_mediapipe_path_are_skipped_with_a_warning(tmp_path, caplog):
    """A config saved beside older weights or checkpoints still loads; the removed detector kind
    and keypoint source are errors that list what is valid."""
    path = tmp_path / "old.yaml"
    path.write_text("detector:\n  max_people: 3\n  mediapipe_python: .venv-mediapipe/bin/python\n"
                    "  mediapipe_tracking: false\n")
    with caplog.at_level("WARNING", logger="nbf_ros.config"):
        assert load_config(path).detector.max_people == 3
    assert "mediapipe_python" in caplog.text and "removed feature" in caplog.text
    for text, key in (("detector:\n  kind: mediapipe\n", "detector.kind"),
                      ("fit:\n  keypoint_source: mediapipe\n", "fit.keypoint_source")):
        path.write_text(text)
        with pytest.raises(ConfigError, match=key):
            load_config(path)
