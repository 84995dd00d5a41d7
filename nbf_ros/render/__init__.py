"""nbf_ros.render: VoGE volume rendering of Gaussian kernels (method.md step 5).

Public API: ``render_gaussians`` (one entry, ``method="culled"`` fast path or ``"dense"``
reference), ``sample_to_kernels`` (inverse rendering), ``RenderCamera``, ``RenderOutput``.
"""
from nbf_ros.render.rasterize import (RenderCamera, RenderOutput, render_gaussians,
                                      sample_to_kernels)

__all__ = ["RenderCamera", "RenderOutput", "render_gaussians", "sample_to_kernels"]
