"""The ROS environment of the demo, set here and handed to the player process."""
from __future__ import annotations

import os
from typing import Optional

from nbf_ros.config import PACKAGE_ROOT


def ros_environment(domain_id: Optional[int]) -> dict[str, str]:
    """The environment for rclpy here and in the player: localhost discovery unless the user
    chose a range (the demo talks to itself), and the domain if given; PYTHONPATH reaches this
    checkout, so the player imports the same package."""
    if domain_id is not None:
        os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    if "ROS_AUTOMATIC_DISCOVERY_RANGE" not in os.environ:
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        os.environ.pop("ROS_LOCALHOST_ONLY", None)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env
