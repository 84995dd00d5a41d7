"""One error family: every user-facing error is an NbfError (the CLI reports it as one line, the
node in its diagnostics) and keeps the base that callers already catch."""
import pytest

from nbf_ros.errors import NbfError


def _classes():
    from nbf_ros.apps.cli import CliError
    from nbf_ros.apps.demo import DemoError
    from nbf_ros.body.model import BodyModelError
    from nbf_ros.config import ConfigError
    from nbf_ros.inference.backends import BackendError
    from nbf_ros.inference.io import InputError
    from nbf_ros.engines import EngineError
    from nbf_ros.keypoints.landmarks import LandmarkModelError
    from nbf_ros.ros.bag_io import BagError
    from nbf_ros.ros.conversions import CameraInfoError, ImageError

    return {CliError: (), DemoError: (), BodyModelError: (ValueError,), ConfigError: (ValueError,),
            BackendError: (RuntimeError,), InputError: (ValueError,), EngineError: (RuntimeError,),
            LandmarkModelError: (RuntimeError,),
            BagError: (ValueError,), CameraInfoError: (ValueError,), ImageError: (ValueError,)}


@pytest.mark.parametrize("name", ["CliError", "DemoError", "BodyModelError", "ConfigError", "BackendError",
                                  "InputError", "EngineError", "LandmarkModelError", "BagError",
                                  "CameraInfoError", "ImageError"])
def test_user_facing_errors_are_nbf_errors(name):
    cls = next(c for c in _classes() if c.__name__ == name)
    assert issubclass(cls, NbfError)
    assert all(issubclass(cls, base) for base in _classes()[cls])

