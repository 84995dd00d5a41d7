"""nbf_ros.nets"""
