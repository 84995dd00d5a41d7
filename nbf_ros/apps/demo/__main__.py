"""``python -m nbf_ros.apps.demo``: the same as ``nbf-ros demo``."""
import sys

from nbf_ros.apps.demo.cli import main

sys.exit(main())
