"""Launch the nbf lifecycle node (autostarts: configure + activate on start).

    ros2 launch nbf_ros nbf.launch.py image:=/camera/color/image_rect camera_info:=/camera/color/camera_info
    ros2 launch nbf_ros nbf.launch.py backend:=tensorrt device:=cuda params_file:=/path/my_nbf.yaml

Arguments: image, camera_info (topics to remap the node's inputs to), params_file (default: the
installed config/nbf.yaml), config_file (pipeline YAML; empty = defaults), backend, device
(empty = from the files), autostart, namespace, rviz (also start RViz with config/nbf.rviz).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "nbf_ros"


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    args = [
        DeclareLaunchArgument("image", default_value="image", description="input image topic"),
        DeclareLaunchArgument("camera_info", default_value="camera_info", description="CameraInfo topic"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "nbf.yaml"]),
                              description="node parameters YAML"),
        DeclareLaunchArgument("config_file", default_value="", description="pipeline YAML; empty = defaults"),
        DeclareLaunchArgument("backend", default_value="", description="torch | onnxruntime | tensorrt"),
        DeclareLaunchArgument("device", default_value="", description="cpu | cuda | cuda:N"),
        DeclareLaunchArgument("autostart", default_value="true", description="configure + activate on start"),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz with config/nbf.rviz"),
    ]
    overrides = {
        "autostart": ParameterValue(LaunchConfiguration("autostart"), value_type=bool),
        "config_file": ParameterValue(LaunchConfiguration("config_file"), value_type=str),
        "backend": ParameterValue(LaunchConfiguration("backend"), value_type=str),
        "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
    }
    node = LifecycleNode(
        package=PACKAGE, executable="nbf_node", name="nbf", namespace=LaunchConfiguration("namespace"),
        output="screen", parameters=[LaunchConfiguration("params_file"), overrides],
        remappings=[("image", LaunchConfiguration("image")),
                    ("camera_info", LaunchConfiguration("camera_info"))])
    rviz = Node(package="rviz2", executable="rviz2", name="rviz2", output="log",
                arguments=["-d", PathJoinSubstitution([share, "config", "nbf.rviz"])],
                condition=IfCondition(LaunchConfiguration("rviz")))
    return LaunchDescription([*args, node, rviz])
