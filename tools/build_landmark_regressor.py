"""Build models/nbf_landmark_regressor.npz: BlazePose's 33 landmarks as sparse vertex combinations.

    .venv/bin/python tools/build_landmark_regressor.py                # ~2 min on one core
    .venv/bin/python tools/build_landmark_regressor.py --train 600 --val 150 --cache-dir /tmp/nbf_lmreg

Why learned, and from renders: BlazePose's landmarks are where *its* training data put hips,
shoulders, heels and face points, not SMPL's joints. On our renders the mesh is known exactly and
BlazePose (models/blazepose_full.onnx through ``keypoints.landmarks.BlazePoseLandmarker``, as the
pipeline runs it) runs on the image, so each landmark can be regressed from the vertices.

Data (deterministic): the generator's train split, seeds 0 .. --train - 1, one unoccluded person
per crop (``data.crops.render_crop``, no box jitter, no opencv-doc photos), rendered at 256 px
and put on a gray canvas with half a crop of context per side (as ``benchmarks/occlusion_bench.py``
gives BlazePose its crops), BlazePose full on the projected full-body box. Validation: held-out
test-split seeds 900000 .. 900000 + --val - 1 (the project's validation range; the reported
benchmarks start at 950000). People whose six left/right landmark pairs fit the truth better
swapped (BlazePose's left/right confusions) or whose pose flag is below 0.5 are left out of the
training rows.

Solve, per landmark k (non-negative least squares, ``scipy.optimize.nnls``):
- candidates: the M vertices whose projections lie closest (mean metric distance at the vertex's
  depth) to the landmark over the training people;
- 2D rows: for P = sum_v w_v V_v in the camera frame (metres), (u - cx) / fx * Z - X = 0 and
  (v - cy) / fy * Z - Y = 0 are linear in w (the ray constraint; metres at the point's depth),
  weighted by sqrt(visibility x presence);
- 3D rows (weight --w3d): the world landmark relative to BlazePose's hip centre equals the
  regressed point relative to the regressed hip centre (hips solved first, from 2D rows only);
- one heavily weighted row sum(w) = 1; then one refit without the rows of the 10 % of people with
  the largest residuals; weights below --min-weight are dropped, at most --max-vertices per
  landmark kept, rows renormalised.

Reported on the validation people: mean distance between BlazePose's landmarks and (a) this
regressor applied to the true mesh, (b) the crude mapping (``keypoints/blazepose.py``: the
landmark *is* the SMPL joint / smplx extra joint), in 2D (pixels of a 256 px crop, visible
landmarks) and 3D (millimetres, hip-centre relative, visible landmarks).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import nnls

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nbf_ros.body.landmark_regressor import (LandmarkRegressor, load_landmark_regressor,  # noqa: E402
                                             save_landmark_regressor)
from nbf_ros.body.model import BodyModel  # noqa: E402
from nbf_ros.config import BlazePoseConfig, NetConfig, SyntheticConfig, resolve_path  # noqa: E402
from nbf_ros.types import BodyParams, CameraIntrinsics  # noqa: E402

LOG = logging.getLogger("build_landmark_regressor")
OUT = "models/nbf_landmark_regressor.npz"
VAL_SEED_BASE = 900_000
CROP_SIZE = 256
CONTEXT = 0.5  # half a crop of gray canvas per side (occlusion_bench.BLAZEPOSE_CONTEXT)
CANVAS_GRAY = 128
MIN_POSE_FLAG = 0.5
HIPS = ("left_hip", "right_hip")
# The crude mapping's correspondences: landmark -> SMPL joint or smplx extra joint of the body file.
CRUDE = {"nose": "nose", "left_eye": "leye", "right_eye": "reye", "left_ear": "lear", "right_ear": "rear",
         "left_shoulder": "left_shoulder", "right_shoulder": "right_shoulder",
         "left_elbow": "left_elbow", "right_elbow": "right_elbow", "left_wrist": "left_wrist",
         "right_wrist": "right_wrist", "left_pinky": "lpinky", "right_pinky": "rpinky",
         "left_index": "lindex", "right_index": "rindex", "left_thumb": "lthumb", "right_thumb": "rthumb",
         "left_hip": "left_hip", "right_hip": "right_hip", "left_knee": "left_knee",
         "right_knee": "right_knee", "left_ankle": "left_ankle", "right_ankle": "right_ankle",
         "left_heel": "LHeel", "right_heel": "RHeel", "left_foot_index": "LBigToe",
         "right_foot_index": "RBigToe"}


@dataclasses.dataclass
class Renders:
    """BlazePose on N rendered people with their truth (numpy; canvas pixels)."""

    seeds: np.ndarray  # (N,)
    found: np.ndarray  # (N,) bool: pose flag >= MIN_POSE_FLAG
    landmarks: np.ndarray  # N x 33 x 2 canvas pixels
    confidence: np.ndarray  # N x 33 visibility x presence
    world: np.ndarray  # N x 33 x 3 metres, hip-centre origin, camera axes (ray-corrected)
    camera: np.ndarray  # N x 4 fx, fy, cx, cy of the canvas
    params: np.ndarray  # N x 85 betas, global_orient, body_pose, transl

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **dataclasses.asdict(self))

    @staticmethod
    def load(path: Path) -> "Renders":
        with np.load(path, allow_pickle=False) as data:
            return Renders(**{f.name: data[f.name] for f in dataclasses.fields(Renders)})


def synthetic_config(split: str) -> SyntheticConfig:
    """The generator's ``split`` without box jitter or machine-dependent opencv-doc photos."""
    base = SyntheticConfig()
    return dataclasses.replace(base, split=split, box_jitter_shift=0.0, box_jitter_scale=0.0,
                               appearance=dataclasses.replace(base.appearance, opencv_doc_photos=False))


def on_canvas(image: np.ndarray, camera: CameraIntrinsics, box: np.ndarray, context: float
              ) -> tuple[np.ndarray, CameraIntrinsics, np.ndarray]:
    """The crop on a gray canvas with ``context`` x its side of margin per side: image, camera and
    box shifted by the margin (BlazePose expects a person with surroundings, as in a camera image)."""
    pad = int(round(context * image.shape[0]))
    canvas = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), constant_values=CANVAS_GRAY)
    cam = CameraIntrinsics(camera.fx, camera.fy, camera.cx + pad, camera.cy + pad,
                           canvas.shape[1], canvas.shape[0])
    return canvas, cam, np.asarray(box, np.float64) + pad


def render_people(split: str, seeds: range, body: BodyModel) -> Renders:
    """Render each seed's person (unoccluded) and run BlazePose full on its truth box."""
    from nbf_ros.data.crops import render_crop
    from nbf_ros.data.scene import body_labels
    from nbf_ros.keypoints.landmarks import BlazePoseLandmarker

    synth, net = synthetic_config(split), NetConfig(crop_size=CROP_SIZE)
    labels = body_labels(body)
    model = BlazePoseLandmarker(BlazePoseConfig(variant="full", num_threads=1, min_pose_flag=0.0))
    rows: dict[str, list] = {f.name: [] for f in dataclasses.fields(Renders)}
    start = time.perf_counter()
    for n, seed in enumerate(seeds):
        s = render_crop(seed, synth, body, labels, net, occlusion=False)
        fx, fy, cx, cy = (float(v) for v in s.crop_camera)
        canvas, cam, box = on_canvas(s.image, CameraIntrinsics(fx, fy, cx, cy, CROP_SIZE, CROP_SIZE),
                                     s.bbox, CONTEXT)
        est = model.estimate(canvas, box[None], cam)[0]
        if est is None:  # unusable box (min_pose_flag 0 keeps every person the model ran on)
            continue
        rows["seeds"].append(seed)
        rows["found"].append(est.pose_flag >= MIN_POSE_FLAG)
        rows["landmarks"].append(est.landmarks[:, :2])
        rows["confidence"].append(est.confidence)
        rows["world"].append(est.world)
        rows["camera"].append([cam.fx, cam.fy, cam.cx, cam.cy])
        rows["params"].append(np.concatenate([s.betas, s.global_orient, s.body_pose, s.transl]))
        if (n + 1) % 50 == 0:
            LOG.info("%s: %d / %d people (%.0f s)", split, n + 1, len(seeds), time.perf_counter() - start)
    return Renders(**{k: np.asarray(v) for k, v in rows.items()})


def cached_renders(split: str, seeds: range, body: BodyModel, cache_dir: str | None) -> Renders:
    if cache_dir is None:
        return render_people(split, seeds, body)
    path = Path(cache_dir) / f"{split}_{seeds.start}_{seeds.stop}.npz"
    if path.is_file():
        LOG.info("renders read from %s", path)
        return Renders.load(path)
    renders = render_people(split, seeds, body)
    renders.save(path)
    return renders


def mesh_of(renders: Renders, body: BodyModel) -> tuple[np.ndarray, np.ndarray]:
    """N x V x 3 true meshes and N x (24 + 21) x 3 joints + extra joints (camera frame, metres)."""
    p = torch.from_numpy(renders.params).float()
    params = BodyParams(p[:, :10], p[:, 10:13], p[:, 13:82], p[:, 82:85])
    with torch.no_grad():
        out = body(params)
    joints = torch.cat([out.joints, out.extra_joints], 1)
    return out.vertices.double().numpy(), joints.double().numpy()


def left_right_ok(renders: Renders, joints: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """(N,) True where BlazePose's six left/right limb landmarks fit the true joints (projected)
    better as labelled than swapped."""
    from nbf_ros.types import JOINT_NAMES

    limbs = [f"{s}_{j}" for j in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle") for s in ("left", "right")]
    lm = np.array([names.index(n) for n in limbs])
    swapped = lm.reshape(-1, 2)[:, ::-1].reshape(-1)
    truth = project(joints[:, [JOINT_NAMES.index(n) for n in limbs]], renders.camera)
    err = np.linalg.norm(renders.landmarks[:, lm] - truth, axis=-1).sum(1)
    err_swapped = np.linalg.norm(renders.landmarks[:, swapped] - truth, axis=-1).sum(1)
    return err <= err_swapped


def project(points: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """N x P x 3 camera-frame points, N x 4 (fx, fy, cx, cy) -> N x P x 2 pixels."""
    fx, fy, cx, cy = (camera[:, i, None] for i in range(4))
    z = np.maximum(points[..., 2], 1e-6)
    return np.stack([fx * points[..., 0] / z + cx, fy * points[..., 1] / z + cy], -1)


def ray_rows(vertices: np.ndarray, uv: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """Rows of the 2D constraint for one landmark: N x 2 x M.

    vertices: N x M x 3 candidate vertices (camera frame); uv: N x 2 the landmark's pixels.
    Row (x): (u - cx) / fx * Z_v - X_v; row (y): (v - cy) / fy * Z_v - Y_v; zero at the truth.
    """
    rx = ((uv[:, 0] - camera[:, 2]) / camera[:, 0])[:, None]
    ry = ((uv[:, 1] - camera[:, 3]) / camera[:, 1])[:, None]
    return np.stack([rx * vertices[..., 2] - vertices[..., 0], ry * vertices[..., 2] - vertices[..., 1]], 1)


def candidates(vertices: np.ndarray, uv: np.ndarray, camera: np.ndarray, conf: np.ndarray,
               count: int) -> np.ndarray:
    """(count,) vertex indices whose rays pass closest to the landmark on average (metres at the
    vertex's depth, weighted by confidence)."""
    rows = ray_rows(vertices, uv, camera)  # N x 2 x V
    dist = np.linalg.norm(rows, axis=1)  # N x V
    mean = (conf[:, None] * dist).sum(0) / max(conf.sum(), 1e-9)
    return np.argsort(mean)[:count]


def solve_landmark(vertices: np.ndarray, uv: np.ndarray, camera: np.ndarray, conf: np.ndarray,
                   world_rel: np.ndarray | None, hip_centre: np.ndarray | None, w3d: float,
                   count: int, trim: float) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative, sum-to-one weights over ``count`` candidate vertices for one landmark.

    Args:
        vertices: N x V x 3 true meshes. uv: N x 2 landmark pixels. conf: (N,) row weights.
        world_rel: N x 3 world landmark minus BlazePose's hip centre (None: 2D rows only).
        hip_centre: N x 3 regressed hip centre of each mesh (with ``world_rel``).
    Returns (candidate indices (count,), weights (count,)).
    """
    cand = candidates(vertices, uv, camera, conf, count)
    sub = vertices[:, cand]  # N x M x 3
    keep = np.ones(len(uv), bool)
    for _ in range(2):  # fit, drop the worst-explained people, refit
        blocks, rhs, owner = [], [], []
        sw = np.sqrt(conf[keep])[:, None, None]
        r2 = ray_rows(sub[keep], uv[keep], camera[keep]) * sw  # n x 2 x M
        blocks.append(r2.reshape(-1, len(cand)))
        rhs.append(np.zeros(r2.shape[0] * 2))
        owner.append(np.repeat(np.flatnonzero(keep), 2))
        if world_rel is not None:
            # sum_v w_v (V_v - H) = W_k - W_hip  (sum w = 1 makes the left side linear in w)
            r3 = (sub[keep] - hip_centre[keep][:, None]).transpose(0, 2, 1) * sw * w3d  # n x 3 x M
            blocks.append(r3.reshape(-1, len(cand)))
            rhs.append((world_rel[keep] * sw[:, :, 0] * w3d).reshape(-1))
            owner.append(np.repeat(np.flatnonzero(keep), 3))
        a, b = np.concatenate(blocks), np.concatenate(rhs)
        scale = 10.0 * np.sqrt(len(b))  # the sum-to-one row dominates every data row
        a = np.vstack([a, np.full((1, len(cand)), scale)])
        b = np.concatenate([b, [scale]])
        w, _ = nnls(a, b, maxiter=50 * len(cand))
        resid = (a[:-1] @ w - b[:-1]) ** 2
        per_person = np.bincount(np.concatenate(owner), weights=resid, minlength=len(uv))
        if trim <= 0:
            break
        limit = np.quantile(per_person[keep], 1.0 - trim)
        keep = keep & (per_person <= limit)
    return cand, w


def sparsify(cand: np.ndarray, w: np.ndarray, min_weight: float, max_vertices: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Keep the largest weights (>= min_weight x the largest, at most max_vertices), renormalised."""
    order = np.argsort(-w)[:max_vertices]
    order = order[w[order] >= min_weight * w[order[0]]]
    kept = w[order] / w[order].sum()
    return cand[order], kept


def fit_regressor(train: Renders, vertices: np.ndarray, names: tuple[str, ...], ok: np.ndarray,
                  args) -> tuple[np.ndarray, np.ndarray]:
    """33 x K indices and weights from the usable training people (``ok``)."""
    sel = np.flatnonzero(ok)
    verts, uv, cam = vertices[sel], train.landmarks[sel], train.camera[sel]
    conf, world = train.confidence[sel], train.world[sel]
    rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    hips = [names.index(n) for n in HIPS]
    for k in hips:  # 2D rows only: the hip centre anchors the 3D rows of the others
        rows[k] = sparsify(*solve_landmark(verts, uv[:, k], cam, conf[:, k], None, None, 0.0,
                                           args.candidates, args.trim), args.min_weight, args.max_vertices)
    hip_centre = 0.5 * sum(np.einsum("m,nmc->nc", rows[k][1], verts[:, rows[k][0]]) for k in hips)
    world_hip = 0.5 * (world[:, hips[0]] + world[:, hips[1]])
    for k in range(len(names)):
        if k in rows:
            continue
        rows[k] = sparsify(*solve_landmark(verts, uv[:, k], cam, conf[:, k], world[:, k] - world_hip,
                                           hip_centre, args.w3d, args.candidates, args.trim),
                           args.min_weight, args.max_vertices)
        LOG.info("%-18s %2d vertices", names[k], len(rows[k][0]))
    width = max(len(rows[k][0]) for k in rows)
    indices = np.zeros((len(names), width), np.int64)
    weights = np.zeros((len(names), width), np.float64)
    for k, (idx, w) in rows.items():
        indices[k, :len(idx)], weights[k, :len(w)] = idx, w
    return indices, weights


def crude_points(joints: np.ndarray, names: tuple[str, ...], extra_names: tuple[str, ...]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """N x 33 x 3 the crude mapping's point for each landmark and (33,) bool: has one."""
    from nbf_ros.types import JOINT_NAMES

    all_names = tuple(JOINT_NAMES) + tuple(extra_names)
    out = np.zeros((joints.shape[0], len(names), 3))
    has = np.zeros(len(names), bool)
    for k, name in enumerate(names):
        if name in CRUDE:
            out[:, k], has[k] = joints[:, all_names.index(CRUDE[name])], True
    return out, has


def errors(points: np.ndarray, renders: Renders, names: tuple[str, ...], use: np.ndarray,
           min_conf: float = 0.5) -> dict[str, np.ndarray]:
    """Per landmark mean 2D error (pixels) and 3D error (mm, hip-centre relative) against
    BlazePose over the people in ``use`` and landmarks with confidence >= min_conf."""
    hips = [names.index(n) for n in HIPS]
    uv = project(points, renders.camera)
    e2 = np.linalg.norm(uv - renders.landmarks, axis=-1)
    rel = points - points[:, hips].mean(1, keepdims=True)
    wrel = renders.world - renders.world[:, hips].mean(1, keepdims=True)
    e3 = np.linalg.norm(rel - wrel, axis=-1) * 1e3
    mask = (renders.confidence >= min_conf) & use[:, None]
    mean = lambda e: np.array([e[mask[:, k], k].mean() if mask[:, k].any() else np.nan  # noqa: E731
                               for k in range(len(names))])
    return {"px": mean(e2), "mm": mean(e3), "all_px": e2[mask], "all_mm": e3[mask]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=300, help="training people (train split seeds 0..)")
    ap.add_argument("--val", type=int, default=100, help="validation people (test split seeds 900000..)")
    ap.add_argument("--candidates", type=int, default=120, help="candidate vertices per landmark")
    ap.add_argument("--w3d", type=float, default=0.3, help="weight of the world-landmark rows")
    ap.add_argument("--trim", type=float, default=0.1, help="share of worst people dropped before the refit")
    ap.add_argument("--min-weight", type=float, default=0.02, help="drop weights below this x the row's largest")
    ap.add_argument("--max-vertices", type=int, default=12)
    ap.add_argument("--cache-dir", help="keep the renders + BlazePose outputs here (e.g. /tmp/nbf_lmreg)")
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--json-out", help="also write the validation numbers here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s", stream=sys.stderr)
    torch.set_num_threads(1)
    from nbf_ros.body.model import EXTRA_JOINT_NAMES
    from nbf_ros.keypoints.blazepose import LANDMARK_NAMES

    names = tuple(LANDMARK_NAMES)
    body = BodyModel(resolve_path("models/nbf_body.npz"))
    train = cached_renders("train", range(0, args.train), body, args.cache_dir)
    val = cached_renders("test", range(VAL_SEED_BASE, VAL_SEED_BASE + args.val), body, args.cache_dir)
    train_v, train_j = mesh_of(train, body)
    ok = train.found & left_right_ok(train, train_j, names)
    LOG.info("training people: %d of %d (%d not found, %d left/right swapped)", ok.sum(), len(ok),
             (~train.found).sum(), (train.found & ~ok).sum())
    indices, weights = fit_regressor(train, train_v, names, ok, args)
    out = resolve_path(args.out)
    save_landmark_regressor(out, names, indices, weights.astype(np.float32), body.num_vertices,
                            train_seeds=np.array([0, args.train], np.int64),
                            val_seeds=np.array([VAL_SEED_BASE, VAL_SEED_BASE + args.val], np.int64),
                            train_people_used=np.array(int(ok.sum()), np.int64),
                            settings=np.array(json.dumps({k: getattr(args, k) for k in
                                                          ("candidates", "w3d", "trim", "min_weight",
                                                           "max_vertices")})))
    reg: LandmarkRegressor = load_landmark_regressor(out, body.num_vertices)
    val_v, val_j = mesh_of(val, body)
    use = val.found & left_right_ok(val, val_j, names)
    ours = errors(reg.apply_numpy(val_v), val, names, use)
    crude_pts, has = crude_points(val_j, names, EXTRA_JOINT_NAMES)
    crude = errors(crude_pts, val, names, use)
    print(f"validation: {int(use.sum())} of {len(use)} held-out people (found, left/right as labelled); "
          f"landmarks with confidence >= 0.5; BlazePose vs the true mesh through each mapping")
    print("| landmark | vertices | regressor px | crude px | regressor mm | crude mm |")
    print("|---|---:|---:|---:|---:|---:|")
    for k, name in enumerate(names):
        c2, c3 = (f"{crude['px'][k]:.1f}", f"{crude['mm'][k]:.0f}") if has[k] else ("-", "-")
        print(f"| {name} | {int((reg.weights[k] > 0).sum())} | {ours['px'][k]:.1f} | {c2} | "
              f"{ours['mm'][k]:.0f} | {c3} |")
    summary = {"val_people": int(use.sum()), "train_people": int(ok.sum()),
               "regressor_px_all33": float(np.nanmean(ours["px"])),
               "regressor_mm_all33": float(np.nanmean(ours["mm"])),
               "regressor_px_crude27": float(np.nanmean(ours["px"][has])),
               "crude_px_crude27": float(np.nanmean(crude["px"][has])),
               "regressor_mm_crude27": float(np.nanmean(ours["mm"][has])),
               "crude_mm_crude27": float(np.nanmean(crude["mm"][has])),
               "max_vertices": int((reg.weights > 0).sum(1).max()), "file": str(args.out)}
    print(f"mean over the 27 landmarks the crude mapping has: regressor {summary['regressor_px_crude27']:.1f} px / "
          f"{summary['regressor_mm_crude27']:.0f} mm, crude {summary['crude_px_crude27']:.1f} px / "
          f"{summary['crude_mm_crude27']:.0f} mm; all 33 (regressor): {summary['regressor_px_all33']:.1f} px / "
          f"{summary['regressor_mm_all33']:.0f} mm")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
