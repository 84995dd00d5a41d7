"""Test doubles and test inputs, for tests/ and benchmarks/ only: nothing in the runtime imports
this package.

- ``scenes``     ``DrawnScene``: drawn people (silhouettes) with known boxes and depths.
- ``pipelines``  ``SilhouettePipeline``: the ``Pipeline`` interface without a model.
"""
