"""nbf_ros.body"""
