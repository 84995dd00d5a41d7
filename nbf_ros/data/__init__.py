"""nbf_ros.data"""
