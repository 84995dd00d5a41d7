"""nbf_ros: occlusion-robust 3D human pose for robots (3D-aware Neural Body Fitting, ICCV 2023).

Importing this package is cheap and needs neither ROS, onnxruntime nor TensorRT: the heavy or
optional dependencies are imported by the submodules that use them, on use.
"""
__version__ = "0.1.0"
