"""nbf_ros.ros"""
