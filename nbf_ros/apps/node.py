"""``nbf_node`` (and ``nbf-ros node``): run the lifecycle node ``nbf`` in its own process.

The node itself (``nbf_ros.ros.node.NbfNode``) is a library class, so that tests, the demo and
benchmarks run it in their own executors; this module is only the process around it: rclpy
initialisation with the command line's ROS arguments, autostart, spin, and a one-line error for
invalid parameter overrides.
"""
from __future__ import annotations

import sys
from typing import Optional


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of ``nbf_node`` and ``nbf-ros node`` (ROS arguments accepted)."""
    import rclpy
    from rclpy.exceptions import ParameterException
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from nbf_ros.ros.node import NbfNode, autostart

    args = sys.argv if argv is None else [sys.argv[0], *argv]
    rclpy.init(args=args)
    node: Optional[NbfNode] = None
    try:
        node = NbfNode()
        if node.get_parameter("autostart").value:
            autostart(node)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, ParameterException) as exc:  # invalid parameter overrides: one line
        print(f"nbf_node: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
