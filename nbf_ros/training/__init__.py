"""nbf_ros.training"""
