"""nbf_ros.render"""
