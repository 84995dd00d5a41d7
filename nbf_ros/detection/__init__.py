"""nbf_ros.detection"""
