"""BodyModel.pose_subset (the fitter's fast path) against the full smplx forward."""
import torch

from nbf_ros.body.model import BodyModel
from nbf_ros.config import resolve_path
from nbf_ros.types import BodyParams


def random_params(batch: int, seed: int) -> BodyParams:
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, scale=1.0: scale * torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return BodyParams(r(batch, 10), r(batch, 3), r(batch, 69, scale=0.4), r(batch, 3))


def test_subset_equals_full_mesh_including_pose_blend_shapes():
    body = BodyModel(resolve_path("models/nbf_body.npz"), dtype=torch.float64)
    # Our model has no pose correctives; give it random ones so that path is exercised too.
    g = torch.Generator().manual_seed(1)
    body.smpl.posedirs.copy_(1e-3 * torch.randn(body.smpl.posedirs.shape, generator=g, dtype=torch.float64))
    params = random_params(3, 0)
    ids = torch.arange(5, body.num_vertices, 13)
    full = body(params)
    sub = body.pose_subset(params, body.shaped_subset(params.betas, ids))
    torch.testing.assert_close(sub.vertices, full.vertices[:, ids], atol=1e-12, rtol=0)
    torch.testing.assert_close(sub.joints, full.joints, atol=1e-12, rtol=0)
    torch.testing.assert_close(sub.joint_transforms, full.joint_transforms, atol=1e-12, rtol=0)


def test_subset_gradients_match_full_mesh():
    body = BodyModel(resolve_path("models/nbf_body.npz"), dtype=torch.float64)
    ids = torch.arange(0, body.num_vertices, 97)
    base = random_params(1, 2)
    grads = []
    for fast in (False, True):
        pose = base.body_pose.clone().requires_grad_(True)
        p = base.replace(body_pose=pose)
        verts = (body.pose_subset(p, body.shaped_subset(p.betas, ids)).vertices if fast
                 else body(p).vertices[:, ids])
        (verts ** 2).sum().backward()
        grads.append(pose.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-10, rtol=1e-8)
