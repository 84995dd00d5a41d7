"""nbf_ros.fitting"""
