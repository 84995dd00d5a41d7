"""nbf_ros.inference"""
