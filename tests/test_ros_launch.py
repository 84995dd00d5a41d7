"""The launch file: always syntax- and argument-checked; built for real where launch_ros exists."""
from __future__ import annotations

import ast
import importlib.util

import pytest

from nbf_ros.config import PACKAGE_ROOT
from nbf_ros.ros import params as P

LAUNCH_FILE = PACKAGE_ROOT / "launch" / "nbf.launch.py"
ARGUMENTS = {"image", "camera_info", "params_file", "config_file", "backend", "device", "autostart",
             "namespace", "rviz"}


def declared_arguments(tree: ast.AST) -> set[str]:
    return {node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument"}


def test_launch_file_parses_and_declares_its_arguments():
    tree = ast.parse(LAUNCH_FILE.read_text(), str(LAUNCH_FILE))
    assert declared_arguments(tree) == ARGUMENTS
    names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in names
    # Overridden parameters exist in the node's table (a typo would be a silent no-op in ROS).
    overridden = {k.value for n in ast.walk(tree) if isinstance(n, ast.Dict) for k in n.keys
                  if isinstance(k, ast.Constant)}
    assert overridden and overridden <= set(P.SPECS)


@pytest.mark.skipif(importlib.util.find_spec("launch_ros") is None,
                    reason="launch_ros is not installed (ROS 2 launch is not on PyPI)")
def test_launch_description_builds():
    spec = importlib.util.spec_from_file_location("nbf_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    from launch.actions import DeclareLaunchArgument

    names = {e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert names == ARGUMENTS


def test_rviz_config_shows_the_node_outputs():
    import yaml

    data = yaml.safe_load((PACKAGE_ROOT / "config" / "nbf.rviz").read_text())
    topics = {d["Topic"]["Value"] for d in data["Visualization Manager"]["Displays"] if "Topic" in d}
    assert {"/nbf/markers", "/nbf/joints", "/nbf/people", "/image", "/nbf/debug_image"} <= topics
