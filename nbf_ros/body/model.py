"""The SMPL-format body model: a thin shell over ``smplx.SMPL`` loaded from our .npz.

smplx (MPI licence) is a dependency, never copied: the maths is smplx's ``lbs`` and its helpers.
This module adds what the pipeline needs on top: loading with clear errors, the per-joint rigid
transforms that LBS used (for the Neural Body Volume kernels), the rest mesh, and extra landmark
joints from the ``vertex_ids_*`` keys of the file.

Frame: the output frame *is* the camera optical frame (see ``nbf_ros/geometry/camera.py``);
no transform is applied beyond ``global_orient`` and ``transl``. Units: metres.
"""
from __future__ import annotations

import contextlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import smplx
from smplx.lbs import batch_rigid_transform, batch_rodrigues, blend_shapes, vertices2joints

from nbf_ros.errors import NbfError
from nbf_ros.types import NUM_JOINTS, BodyParams

REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
NUM_POSE_BASIS = 9 * (NUM_JOINTS - 1)
VERTEX_IDS_PREFIX = "vertex_ids_"
# smplx's VertexJointSelector order of the 21 extra joints (face, feet, finger tips).
EXTRA_JOINT_NAMES: tuple[str, ...] = (
    "nose", "reye", "leye", "rear", "lear",
    "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
    "lthumb", "lindex", "lmiddle", "lring", "lpinky",
    "rthumb", "rindex", "rmiddle", "rring", "rpinky",
)
_FIX_HINT = ("run `python tools/build_body_model.py` to rebuild the embedded model, or convert an "
             "official SMPL .pkl with `python tools/convert_smpl_pkl.py`")


class BodyModelError(NbfError, ValueError):
    """The body model file is missing, unreadable or not in the SMPL .npz layout."""


@dataclass
class BodyOutput:
    """What the body model produced for a batch of B bodies (camera optical frame, metres).

    Attributes:
        vertices: B x V x 3 posed mesh, ``transl`` applied.
        joints: B x 24 x 3 SMPL joints, ``transl`` applied.
        joint_transforms: B x 24 x 4 x 4 rigid transforms of LBS (rest pose -> posed, ``transl``
            included): a rest point x attached to joint j goes to T_j [x, 1].
        rest_joints: B x 24 x 3 joints of the shaped rest pose (betas only).
        extra_joints: B x 21 x 3 landmark joints (EXTRA_JOINT_NAMES), or None when the file has
            no ``vertex_ids_*`` keys.
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    joint_transforms: torch.Tensor
    rest_joints: torch.Tensor
    extra_joints: Optional[torch.Tensor] = None


@dataclass
class ShapedSubset:
    """Shaped rest pose of a vertex subset (see ``BodyModel.shaped_subset``).

    Attributes:
        vertex_ids: (N,) int64 vertex indices.
        vertices: B x N x 3 shaped rest positions of those vertices.
        rest_joints: B x 24 x 3 shaped rest joints.
        posedirs, lbs_weights: the subset's pose blend shapes and skinning weights.
    """

    vertex_ids: torch.Tensor
    vertices: torch.Tensor
    rest_joints: torch.Tensor
    posedirs: torch.Tensor  # 207 x N x 3 pose blend shapes of the subset
    lbs_weights: torch.Tensor  # N x 24


@dataclass
class SubsetBasis:
    """What a vertex subset needs from the model whatever the shape (``BodyModel.subset_basis``):
    its template and shape blend shapes, the joints' template and shape basis (the rest joints
    are linear in the betas: J (T + S beta) = J T + (J S) beta), its pose blend shapes
    (207 x N x 3, contiguous) and skinning weights (N x 24)."""

    vertex_ids: torch.Tensor
    v_template: torch.Tensor  # N x 3
    v_shapedirs: torch.Tensor  # N x 3 x nb
    j_template: torch.Tensor  # 24 x 3
    j_shapedirs: torch.Tensor  # 24 x 3 x nb
    posedirs: torch.Tensor
    lbs_weights: torch.Tensor

    def rest_joints(self, betas: torch.Tensor) -> torch.Tensor:
        """B x 24 x 3 shaped rest joints for B x nb betas."""
        return self.j_template + torch.einsum("jcb,zb->zjc", self.j_shapedirs, betas)

    def shaped(self, betas: torch.Tensor) -> "ShapedSubset":
        """The subset shaped with B x nb betas (not checked: ``BodyModel.shaped_subset`` does)."""
        vertices = self.v_template + torch.einsum("ncb,zb->znc", self.v_shapedirs, betas)
        return ShapedSubset(vertex_ids=self.vertex_ids, vertices=vertices, rest_joints=self.rest_joints(betas),
                            posedirs=self.posedirs, lbs_weights=self.lbs_weights)


def load_model_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Arrays of an SMPL-layout .npz, validated; raises a one-line BodyModelError naming the fix."""
    path = Path(path)
    if not path.is_file():
        raise BodyModelError(f"body model file not found: {path}; {_FIX_HINT}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise BodyModelError(f"body model file {path} is not a readable .npz ({err}); {_FIX_HINT}") from err
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise BodyModelError(f"body model file {path} lacks keys {missing}; {_FIX_HINT}")
    problem = _shape_problem(data)
    if problem:
        raise BodyModelError(f"body model file {path}: {problem}; {_FIX_HINT}")
    return data


def _shape_problem(data: dict[str, np.ndarray]) -> str:
    """Empty string when the arrays have SMPL's shapes, else a description of the first mismatch."""
    num_verts = data["v_template"].shape[0]
    expected = {
        "v_template": (num_verts, 3), "J_regressor": (NUM_JOINTS, num_verts),
        "weights": (num_verts, NUM_JOINTS), "kintree_table": (2, NUM_JOINTS),
        "posedirs": (num_verts, 3, NUM_POSE_BASIS),
    }
    for key, shape in expected.items():
        if tuple(data[key].shape) != shape:
            return f"{key} has shape {tuple(data[key].shape)}, expected {shape}"
    shapedirs, faces = data["shapedirs"], data["f"]
    if shapedirs.ndim != 3 or shapedirs.shape[:2] != (num_verts, 3):
        return f"shapedirs has shape {tuple(shapedirs.shape)}, expected ({num_verts}, 3, B)"
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.size == 0 or faces.min() < 0 \
            or faces.max() >= num_verts:
        return f"f must be F x 3 vertex indices below {num_verts}"
    return ""


def vertex_ids_from(data: dict[str, np.ndarray]) -> Optional[dict[str, int]]:
    """smplx ``vertex_ids`` dict from the file's ``vertex_ids_<name>`` keys (None if incomplete)."""
    ids = {key[len(VERTEX_IDS_PREFIX):]: int(value) for key, value in data.items()
           if key.startswith(VERTEX_IDS_PREFIX)}
    return ids if all(name in ids for name in EXTRA_JOINT_NAMES) else None


class BodyModel(torch.nn.Module):
    """SMPL-format body model (24 joints, axis-angle pose, PCA shape) over ``smplx.SMPL``.

    Stateless: every parameter comes through ``forward(BodyParams)``; the model data lives in
    smplx's registered buffers, so ``.to(device, dtype)`` moves everything.
    """

    def __init__(self, model_path: str | Path, num_betas: int = 10,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        data = load_model_arrays(model_path)
        if not 1 <= num_betas <= data["shapedirs"].shape[-1]:
            raise BodyModelError(f"body model file {model_path} has {data['shapedirs'].shape[-1]} "
                                 f"shape components, {num_betas} requested; {_FIX_HINT}")
        self.model_path = Path(model_path)
        ids = vertex_ids_from(data)
        self.has_extra_joints = ids is not None
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a note for < 300 betas
            self.smpl = smplx.SMPL(
                model_path=str(model_path), data_struct=smplx.utils.Struct(**data),
                # Without landmarks, smplx still selects the face ones: point them at vertex 0
                # (SMPL's default ids are meaningless on another mesh) and drop them in forward.
                num_betas=num_betas, dtype=dtype,
                vertex_ids=ids or {name: 0 for name in EXTRA_JOINT_NAMES},
                use_hands=ids is not None, use_feet_keypoints=ids is not None,
                create_betas=False, create_global_orient=False, create_body_pose=False,
                create_transl=False)
        self._faces = np.asarray(data["f"], dtype=np.int64)

    @property
    def faces(self) -> np.ndarray:
        """F x 3 int64 triangle vertex indices."""
        return self._faces

    @property
    def lbs_weights(self) -> torch.Tensor:
        """V x 24 skinning weights (a buffer: follows ``.to()``)."""
        return self.smpl.lbs_weights

    @property
    def num_vertices(self) -> int:
        return int(self.smpl.v_template.shape[0])

    @property
    def num_betas(self) -> int:
        return int(self.smpl.num_betas)

    @property
    def parents(self) -> torch.Tensor:
        """(24,) parent joint indices, -1 for the root."""
        return self.smpl.parents

    def rest_vertices(self, betas: torch.Tensor) -> torch.Tensor:
        """B x V x 3 shaped rest mesh (zero pose, no translation) for B x num_betas betas."""
        batch = betas.shape[0] if betas.ndim == 2 else -1
        self._check_tensor("betas", betas, (batch, self.num_betas))
        return self.smpl.v_template + blend_shapes(betas, self.smpl.shapedirs)

    def forward(self, params: BodyParams) -> BodyOutput:
        """Posed body for B parameter sets (see BodyParams for shapes)."""
        batch = params.batch_size
        self._check_tensor("betas", params.betas, (batch, self.num_betas))
        for name, value in zip(("global_orient", "body_pose", "transl"), params.as_tuple()[1:]):
            self._check_tensor(name, value, tuple(value.shape))
        out = self.smpl(betas=params.betas, global_orient=params.global_orient,
                        body_pose=params.body_pose, transl=params.transl)
        rest_joints = vertices2joints(self.smpl.J_regressor, self.rest_vertices(params.betas))
        full_pose = torch.cat([params.global_orient, params.body_pose], dim=1)
        rot_mats = batch_rodrigues(full_pose.reshape(-1, 3)).reshape(batch, NUM_JOINTS, 3, 3)
        _, transforms = batch_rigid_transform(rot_mats, rest_joints, self.smpl.parents,
                                              dtype=rot_mats.dtype)
        shift = torch.zeros_like(transforms)
        shift[..., :3, 3] = params.transl[:, None, :]
        extra = out.joints[:, NUM_JOINTS:] if self.has_extra_joints else None
        return BodyOutput(vertices=out.vertices, joints=out.joints[:, :NUM_JOINTS],
                          joint_transforms=transforms + shift, rest_joints=rest_joints,
                          extra_joints=extra)

    def shaped_subset(self, betas: torch.Tensor, vertex_ids: torch.Tensor) -> "ShapedSubset":
        """Rest-pose data of a vertex subset for fixed shapes, reusable across poses.

        Fitting keeps the shape fixed and only needs the NBV's kernel vertices, so it shapes
        them once and then poses N (~850) vertices per iteration instead of the whole mesh.
        Shaping costs a few small products on the subset's memoised bases (``subset_basis``),
        not the full mesh and the joint regressor (~2 ms per call before).
        """
        batch = betas.shape[0] if betas.ndim == 2 else -1
        self._check_tensor("betas", betas, (batch, self.num_betas))
        return self.subset_basis(vertex_ids).shaped(betas)

    def subset_basis(self, vertex_ids: torch.Tensor) -> "SubsetBasis":
        """The shape-independent data of a vertex subset (``SubsetBasis``), built once per
        subset (by its ids) and per device and dtype of the model, then reused."""
        ref = self.smpl.v_template
        key = (vertex_ids.cpu().numpy().tobytes(), str(ref.device), ref.dtype)
        cache = self.__dict__.setdefault("_subset_cache", {})
        if key not in cache:
            shapedirs = self.smpl.shapedirs[..., :self.num_betas]  # V x 3 x nb
            regressor = self.smpl.J_regressor
            cache[key] = SubsetBasis(
                vertex_ids=vertex_ids, v_template=ref.index_select(0, vertex_ids),
                v_shapedirs=shapedirs.index_select(0, vertex_ids), j_template=regressor @ ref,
                j_shapedirs=torch.einsum("jv,vcb->jcb", regressor, shapedirs),
                posedirs=self._subset_posedirs(vertex_ids),
                lbs_weights=self.lbs_weights.index_select(0, vertex_ids))
        return cache[key]

    def _subset_posedirs(self, vertex_ids: torch.Tensor) -> torch.Tensor:
        """207 x N x 3 pose blend shapes of a vertex subset (contiguous).

        Advanced indexing, not ``index_select``: on smplx's 207 x 3V buffer viewed as 207 x V x 3,
        ``index_select`` along the middle dimension took ~50 ms per call on this CPU, indexing
        ~0.5 ms (same values); the fitter shapes a subset once per person and frame. The result
        is made contiguous once, so that ``pose_subset``'s product with it is a plain matrix
        product (the indexed view cost a transposing copy on every call: 0.74 vs 0.23 ms per
        forward + backward for 858 vertices).
        """
        num_pose = self.smpl.posedirs.shape[0]
        return self.smpl.posedirs.reshape(num_pose, -1, 3)[:, vertex_ids].contiguous()

    def pose_subset(self, params: BodyParams, subset: "ShapedSubset") -> BodyOutput:
        """Posed body restricted to ``subset``'s vertices (``vertices`` is B x N x 3).

        The same linear blend skinning as ``forward`` (pose blend shapes included), for N
        vertices; ``params.betas`` must be those the subset was shaped with (not re-checked).
        """
        batch = params.batch_size
        full_pose = torch.cat([params.global_orient, params.body_pose], dim=1)
        rot_mats = batch_rodrigues(full_pose.reshape(-1, 3)).reshape(batch, NUM_JOINTS, 3, 3)
        posed_joints, transforms = batch_rigid_transform(rot_mats, subset.rest_joints, self.smpl.parents,
                                                         dtype=rot_mats.dtype)
        eye = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
        pose_feature = (rot_mats[:, 1:] - eye).reshape(batch, -1)  # B x 207
        num_pose = subset.posedirs.shape[0]
        v_posed = subset.vertices + (pose_feature @ subset.posedirs.reshape(num_pose, -1)).reshape(subset.vertices.shape)
        # T_n = sum_j w_nj A_j (B x N x 4 x 4), then x' = R_n x + t_n.
        blend = torch.einsum("nj,bjrc->bnrc", subset.lbs_weights, transforms)
        vertices = torch.einsum("bnrc,bnc->bnr", blend[..., :3, :3], v_posed) + blend[..., :3, 3]
        shift = torch.zeros_like(transforms)
        shift[..., :3, 3] = params.transl[:, None, :]
        return BodyOutput(vertices=vertices + params.transl[:, None], joints=posed_joints + params.transl[:, None],
                          joint_transforms=transforms + shift, rest_joints=subset.rest_joints)

    def _check_tensor(self, name: str, value: torch.Tensor, shape: tuple[int, ...]) -> None:
        ref = self.smpl.v_template
        if tuple(value.shape) != shape:
            raise ValueError(f"{name} has shape {tuple(value.shape)}, expected {shape}")
        if value.dtype != ref.dtype or value.device != ref.device:
            raise ValueError(f"{name} is {value.dtype} on {value.device}; the body model is "
                             f"{ref.dtype} on {ref.device} (use params.to(...) or model.to(...))")


def load_body_model(path: str | Path, num_betas: int = 10,
                    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> BodyModel:
    """A BodyModel from ``path`` on ``device``; BodyModelError (one line) if the file is unusable."""
    return BodyModel(path, num_betas=num_betas, dtype=dtype).to(device)
