"""Occlusion benchmark: the paper's protocol on held-out synthetic people with exact 3D truth.

Conditions: clean; random 3D occluders (the generator's boxes, bars, blobs, other bodies);
adversarial occlusion as in 3DPW-AdvOcc (square texture of side 40 / 80 at 224-px scale, stride
10, per image the position with the worst regression MPJPE). Methods side by side on the same
crops: regression only; keypoint-only fitting (same keypoints, priors, optimiser and budget, no
features); NBF fitting; ablations on a subset (no occlusion model, O=1 features, anisotropic
kernels, 120 iterations). Metrics: MPJPE / PA-MPJPE (all and visible joints), PVE, PCKh@0.5,
iterations, time. Writes docs/results.md and prints a table and a final JSON line.

    .venv/bin/python benchmarks/occlusion_bench.py --people 300 --ablation-people 100

Joints: SMPL's 24, root (pelvis) aligned, millimetres. "Visible" joints: the generator's joint
visibility >= 0.5 and not under the adversarial patch.

With and without an aligned depth image, on this test set (``--cases-cache``): depth_bench.py
(root position error, MPJPE, PA-MPJPE, hidden-joint AUC; docs/depth.md).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nbf_ros.body.model import BodyModel  # noqa: E402
from nbf_ros.config import NbfConfig, load_config, resolve_path  # noqa: E402
from nbf_ros.data import appearance as app  # noqa: E402
from nbf_ros.data.crops import render_crop  # noqa: E402
from nbf_ros.data.scene import body_labels  # noqa: E402
from nbf_ros.evaluation.metrics import pck_head, procrustes_aligned, root_aligned_error  # noqa: E402
from nbf_ros.evaluation.occlusion import joints_under_patch, paste_patch, patch_grid, worst_patch  # noqa: E402
from nbf_ros.fitting.confidence import confidence_cues, person_confidence  # noqa: E402
from nbf_ros.fitting.fitter import Fitter  # noqa: E402
from nbf_ros.geometry.camera import project_points  # noqa: E402
from nbf_ros.inference.backends import load_backend  # noqa: E402
from nbf_ros.fitting.from_landmarks import LandmarkBodyFitter  # noqa: E402
from nbf_ros.inference.pipeline import initial_body, with_weights_config  # noqa: E402
from nbf_ros.types import BodyParams, CameraIntrinsics  # noqa: E402

LOG = logging.getLogger("occlusion_bench")
# Test-split seeds; training uses the train split from seed 0. Fitting settings were tuned on
# seeds 900000-900007 (docs/results.md, "Tuning"), so the reported run starts at 950000.
TEST_SEED_BASE = 950_000


@dataclass
class Case:
    """One person crop of one condition, with its truth."""

    condition: str
    index: int
    image: np.ndarray  # S x S x 3 uint8
    camera: CameraIntrinsics
    params: BodyParams
    joints3d: np.ndarray
    joints2d: np.ndarray
    visible: np.ndarray  # (24,) bool


@dataclass
class Row:
    errors: list = field(default_factory=list)  # per person dicts


def crop_camera(sample, size: int) -> CameraIntrinsics:
    fx, fy, cx, cy = (float(v) for v in sample.crop_camera)
    return CameraIntrinsics(fx, fy, cx, cy, size, size)


def truth_params(sample) -> BodyParams:
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)[None]  # noqa: E731
    return BodyParams(t(sample.betas), t(sample.global_orient), t(sample.body_pose), t(sample.transl))


def occluder_texture(seed: int, side: int, cfg) -> np.ndarray:
    """A held-out texture square (test-split backgrounds/procedural textures)."""
    rng = np.random.default_rng(seed)
    background = app.random_background(rng, "test", (side * 2, side * 2), cfg.appearance)
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    return background.render(identity, side, side)


class Regressor:
    """Crops -> joints with the network's regression head (for the adversarial search)."""

    def __init__(self, backend, body: BodyModel, size: int) -> None:
        self.backend, self.body, self.size = backend, body, size
        self.camera: CameraIntrinsics | None = None

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        pixels = crops.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        net = self.backend.run(pixels)
        init = initial_body(net, [self.camera] * len(crops), self.size)
        with torch.no_grad():
            return self.body(init).joints.numpy()


CACHE_VERSION = 1


def cache_key(args, config: NbfConfig) -> dict:
    """What a cached test set depends on: the people, the seed range, the crop size and the
    regression weights (the adversarial positions are the worst for *those* weights)."""
    import hashlib

    weights = resolve_path(config.inference.weights_path)
    return {"version": CACHE_VERSION, "people": args.people, "shard": getattr(args, "shard", "0/1"),
            "seed_base": TEST_SEED_BASE, "crop_size": config.net.crop_size,
            "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}


def save_cases(path: Path, cases: list[Case], key: dict) -> None:
    """Write the test set as one .npz of plain arrays (no pickles), tagged with ``key``."""
    cam = lambda c: [c.fx, c.fy, c.cx, c.cy, c.width, c.height]  # noqa: E731
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path, key=np.array(json.dumps(key, sort_keys=True)),
        condition=np.array([c.condition for c in cases]), index=np.array([c.index for c in cases]),
        image=np.stack([c.image for c in cases]), camera=np.array([cam(c.camera) for c in cases]),
        params=np.stack([torch.cat([c.params.betas, c.params.global_orient, c.params.body_pose,
                                    c.params.transl], -1)[0].numpy() for c in cases]),
        joints3d=np.stack([c.joints3d for c in cases]), joints2d=np.stack([c.joints2d for c in cases]),
        visible=np.stack([c.visible for c in cases]))


def load_cases(path: Path, key: dict) -> list[Case] | None:
    """The cached test set, or None when there is none or it was built for something else."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if json.loads(str(data["key"])) != key:
                LOG.info("test-set cache %s is for other settings; rebuilding", path)
                return None
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        LOG.warning("test-set cache %s is unreadable (%s); rebuilding", path, exc)
        return None
    cases = []
    for i in range(len(arrays["index"])):
        fx, fy, cx, cy, w, h = arrays["camera"][i]
        p = torch.from_numpy(arrays["params"][i]).float()[None]
        nb = p.shape[1] - 3 - 69 - 3
        params = BodyParams(p[:, :nb], p[:, nb:nb + 3], p[:, nb + 3:nb + 72], p[:, nb + 72:])
        cases.append(Case(str(arrays["condition"][i]), int(arrays["index"][i]), arrays["image"][i],
                          CameraIntrinsics(float(fx), float(fy), float(cx), float(cy), int(w), int(h)), params,
                          arrays["joints3d"][i], arrays["joints2d"][i], arrays["visible"][i]))
    return cases


def cached_cases(args, config: NbfConfig, body: BodyModel, regressor: Regressor) -> list[Case]:
    """``build_cases`` through the ``--cases-cache`` file (the adversarial search is the slow part
    of the benchmark: ~7 s per person on one core)."""
    if not args.cases_cache:
        return build_cases(args, config, body, regressor)
    path, key = Path(args.cases_cache), cache_key(args, config)
    cases = load_cases(path, key)
    if cases is None:
        cases = build_cases(args, config, body, regressor)
        save_cases(path, cases, key)
    else:
        LOG.info("test set read from %s (%d crops)", path, len(cases))
    return cases


def build_cases(args, config: NbfConfig, body: BodyModel, regressor: Regressor) -> list[Case]:
    from nbf_ros.config import SyntheticConfig

    size = config.net.crop_size
    base = SyntheticConfig()
    # Held-out split, no box jitter (the inference crop rule), and no opencv-doc photos, so the
    # test images are identical on every machine whether or not Debian's opencv-doc is installed.
    synth = dataclasses.replace(base, split="test", box_jitter_shift=0.0, box_jitter_scale=0.0,
                                appearance=dataclasses.replace(base.appearance, opencv_doc_photos=False))
    labels = body_labels(body, num_kernels=config.nbv.num_kernels)
    cases: list[Case] = []
    grids = {s: patch_grid(size, s) for s in (40, 80)}
    shard, shards = parse_shard(getattr(args, "shard", "0/1"))
    people = [i for i in range(args.people) if i % shards == shard]
    for i in tqdm(people, desc="test set", file=sys.stderr):
        seed = TEST_SEED_BASE + i
        for condition, occl in (("clean", False), ("occluders", True)):
            s = render_crop(seed, synth, body, labels, config.net, occlusion=occl)
            cases.append(Case(condition, i, s.image, crop_camera(s, size), truth_params(s), s.joints3d,
                              s.joints2d, s.joint_visibility >= 0.5))
            if condition == "clean":
                clean = s
        regressor.camera = crop_camera(clean, size)
        for side, grid in grids.items():
            texture = occluder_texture(seed, grid[0].side, synth)
            patch, _ = worst_patch(clean.image, texture, grid, clean.joints3d, regressor)
            visible = (clean.joint_visibility >= 0.5) & ~joints_under_patch(clean.joints2d, patch)
            cases.append(Case(f"advocc{side}", i, paste_patch(clean.image, patch, texture),
                              crop_camera(clean, size), truth_params(clean), clean.joints3d,
                              clean.joints2d, visible))
    return cases


def method_configs(config: NbfConfig) -> dict[str, NbfConfig]:
    """Every method with the same iteration budget and no wall-clock cut-off, so results do not
    depend on the machine's load (time per person is measured and reported instead)."""
    r = dataclasses.replace
    config = r(config, fit=r(config.fit, budget_ms=1e9))
    fit = config.fit
    return {
        "regression": config,
        "keypoint-fit": r(config, fit=r(fit, feature_weight=0.0, keypoint_weight=1.0)),
        "nbf": config,
        "nbf-no-occlusion-model": r(config, fit=r(fit, use_occlusion_model=False)),
        "nbf-O1": r(config, nbv=r(config.nbv, orientation_bins=1)),
        "nbf-anisotropic": r(config, nbv=r(config.nbv, covariance="anisotropic")),
        "nbf-120-iters": r(config, fit=r(fit, max_iters=120, budget_ms=1e9)),
    }


MAIN_METHODS = ("regression", "keypoint-fit", "nbf")
ABLATIONS = ("nbf-no-occlusion-model", "nbf-O1", "nbf-anisotropic", "nbf-120-iters")


class KeypointSource:
    """2D keypoints of the fitting's keypoint term for one crop.

    ``kind`` is the config's ``fit.keypoint_source``.
    ``network``: the network's own heatmaps. ``blazepose``: BlazePose GHUM (the ``blazepose``
    config section; full by default) run in-process on the crop (``keypoints/landmarks.py``) and
    mapped onto SMPL's joints, the paper's protocol with an external 2D detector (it used
    OpenPose). Its box is the one the crop was cut around (``crop_box``), so its region of
    interest is the one the pipeline would give it on the camera image; only the resolution
    differs (the benchmark's crops are ``net.crop_size`` pixels). Where BlazePose finds nobody
    (pose flag below ``blazepose.min_pose_flag``) the heatmaps are used and the person is counted
    in ``misses``.
    """

    def __init__(self, kind: str, config: NbfConfig) -> None:
        self.kind, self.misses, self.calls = kind, 0, 0
        self.crop_scale = config.net.crop_scale
        self.landmarker = None
        if kind == "blazepose":
            from nbf_ros.keypoints.landmarks import BlazePoseLandmarker

            self.landmarker = BlazePoseLandmarker(config.blazepose)

    def crop_box(self, size: int) -> np.ndarray:
        """1 x 4: the person box a crop of ``size`` pixels was cut around, as far as the
        landmarker's region depends on it (centre and longer side: ``CropBox.around_bbox``
        makes the crop side = longer box side x ``net.crop_scale`` about the box centre)."""
        half = 0.5 * size / self.crop_scale
        centre = 0.5 * size
        return np.array([[centre - half, centre - half, centre + half, centre + half]])

    def landmarks(self, case: Case):
        """BlazePose's ``PoseLandmarks`` for the crop (crop pixels, world landmarks in the crop
        camera's axes), or None where it found nobody (counted in ``misses``)."""
        if self.landmarker is None:
            return None
        self.calls += 1
        found = self.landmarker.estimate(case.image, self.crop_box(case.image.shape[0]), case.camera)[0]
        if found is None:
            self.misses += 1
        return found

    def __call__(self, case: Case) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(1 x 24 x 2 crop pixels, 1 x 24 confidence) for the fitter, or None (heatmaps)."""
        return self.keypoints_from(self.landmarks(case))

    @staticmethod
    def keypoints_from(found) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The fitter's keypoints from a case's landmarks (``landmarks``), None where BlazePose
        found nobody (the fitter then uses the heatmaps)."""
        if found is None:
            return None
        kp = found.to_smpl()
        return torch.from_numpy(kp.joints2d).float()[None], torch.from_numpy(kp.confidence).float()[None]


def evaluate_case(case: Case, fitter: Fitter | None, net, init: BodyParams, body: BodyModel,
                  iterate: bool, keypoints: tuple[torch.Tensor, torch.Tensor] | None = None,
                  alternatives: list[BodyParams] = ()) -> dict:
    start = time.perf_counter()
    result = fitter.fit(net, 0, case.camera, init, iterate=iterate, keypoints=keypoints,
                        alternatives=alternatives, alternatives_mirrored=True)
    ms = (time.perf_counter() - start) * 1e3
    with torch.no_grad():
        pred_out, true_out = body(result.params), body(case.params)
    pred = pred_out.joints[0].double().numpy()
    truth = case.joints3d
    per_joint = root_aligned_error(pred, truth) * 1e3
    pa = np.linalg.norm(procrustes_aligned(pred, truth) - truth, axis=-1) * 1e3
    verts_err = root_aligned_error(
        np.concatenate([pred_out.joints[0, :1].double().numpy(), pred_out.vertices[0].double().numpy()]),
        np.concatenate([true_out.joints[0, :1].double().numpy(), true_out.vertices[0].double().numpy()]))
    cam = case.camera
    uv = project_points(pred_out.joints[0].double(), cam.fx, cam.fy, cam.cx, cam.cy).numpy()
    vis = case.visible
    return {
        "mpjpe": per_joint.mean(), "mpjpe_vis": per_joint[vis].mean() if vis.any() else np.nan,
        "pa_mpjpe": pa.mean(), "pa_mpjpe_vis": pa[vis].mean() if vis.any() else np.nan,
        "pve": verts_err[1:].mean() * 1e3, "pckh": pck_head(uv, case.joints2d).mean(),
        "iters": result.info.iterations, "ms": ms,
        "confidence": result.confidence, "agreement": getattr(result, "agreement", np.nan),
        "vis_pred": result.joint_visibility >= 0.5, "vis_true": vis,
        "external_keypoints": keypoints is not None,
    }


def evaluate_world_landmarks(case: Case, found) -> dict:
    """BlazePose's own 3D answer, as a MediaPipe user gets it: its world landmarks (rotated onto
    the crop-centre ray by ``keypoints/landmarks.py``) mapped to our 24 joints
    (``keypoints.blazepose.map_points``), root-relative. No body, no position: MPJPE and
    PA-MPJPE only; a person BlazePose misses counts as missing (nan, left out of the means)."""
    from nbf_ros.keypoints.blazepose import map_points

    nan = float("nan")
    item = {"mpjpe": nan, "mpjpe_vis": nan, "pa_mpjpe": nan, "pa_mpjpe_vis": nan, "pve": nan,
            "pckh": nan, "iters": 0, "ms": 0.0, "confidence": nan, "agreement": nan,
            "vis_pred": None, "vis_true": case.visible, "external_keypoints": found is not None}
    if found is None:
        return item
    pred = map_points(found.world)
    truth = case.joints3d
    per_joint = root_aligned_error(pred, truth) * 1e3
    pa = np.linalg.norm(procrustes_aligned(pred, truth) - truth, axis=-1) * 1e3
    vis = case.visible
    item.update(mpjpe=per_joint.mean(), mpjpe_vis=per_joint[vis].mean() if vis.any() else nan,
                pa_mpjpe=pa.mean(), pa_mpjpe_vis=pa[vis].mean() if vis.any() else nan)
    return item


def landmark_start(fitter, case: Case, found, regression: BodyParams
                   ) -> tuple[BodyParams, list[BodyParams], bool, np.ndarray | None]:
    """(start, extra start hypotheses, from landmarks?, person-confidence cues or None) as
    ``Pipeline.start_bodies`` makes them for one person: our body fitted to BlazePose's landmarks
    and its turned reading, or the regression head's body where BlazePose found nobody or too few
    confident landmarks."""
    if fitter is None or found is None:
        return regression, [], False, None
    result = fitter.fit([found], [case.camera])
    if not result.ok[0]:
        return regression, [], False, None
    alternatives = [result.alternative] if fitter.config.turned_hypothesis else []
    info = result.info[0]
    cues = confidence_cues(found.pose_flag, found.confidence, info.losses[info.hypothesis])
    return result.params, alternatives, True, cues


def summarise(rows: dict[tuple[str, str], list[dict]]) -> list[dict]:
    table = []
    for (condition, method), items in sorted(rows.items()):
        mean = lambda k: float(np.nanmean([it[k] for it in items]))  # noqa: E731
        iters = mean("iters")
        table.append({"condition": condition, "method": method, "people": len(items),
                      "mpjpe": mean("mpjpe"), "mpjpe_vis": mean("mpjpe_vis"), "pa_mpjpe": mean("pa_mpjpe"),
                      "pa_mpjpe_vis": mean("pa_mpjpe_vis"), "pve": mean("pve"), "pckh": mean("pckh"),
                      "iters": iters, "ms": mean("ms"),
                      "ms_per_iter": mean("ms") / iters if iters > 0 else float("nan")})
    return table


def visibility_quality(items: list[dict]) -> dict:
    pred = np.concatenate([it["vis_pred"] for it in items])
    true = np.concatenate([it["vis_true"] for it in items])
    tp, tn = np.sum(pred & true), np.sum(~pred & ~true)
    return {"accuracy": float((tp + tn) / pred.size),
            "occluded_recall": float(tn / max(np.sum(~true), 1)),
            "visible_recall": float(tp / max(np.sum(true), 1))}


def confidence_quality(items: list[dict], good_mm: float = 100.0) -> dict:
    """How well confidence ranks people: Spearman correlation with -MPJPE and a binned table."""
    from scipy.stats import spearmanr

    conf = np.array([it["confidence"] for it in items])
    err = np.array([it["mpjpe"] for it in items])
    rho = spearmanr(conf, -err).statistic if len(items) > 2 else float("nan")
    bins = []
    for lo, hi in ((0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.01)):
        sel = (conf >= lo) & (conf < hi)
        if sel.any():
            bins.append({"confidence": f"{lo:.2f}-{min(hi, 1.0):.2f}", "people": int(sel.sum()),
                         "mpjpe": float(err[sel].mean()),
                         f"share_below_{int(good_mm)}mm": float(np.mean(err[sel] < good_mm))})
    return {"spearman": float(rho), "bins": bins}


def fit_confidence_calibration(items: list[dict], good_mm: float = 150.0) -> dict:
    """Logistic fit of P(MPJPE < good_mm) on the fit's feature agreement (maximum likelihood).

    Gives the (scale, offset) of ``FitConfig.confidence_scale/offset``; people with no visible
    joint (agreement nan) get confidence 0 by construction and are left out of the fit.
    """
    from scipy.optimize import minimize

    agree = np.array([it["agreement"] for it in items], dtype=np.float64)
    good = np.array([it["mpjpe"] < good_mm for it in items], dtype=np.float64)
    keep = np.isfinite(agree)
    agree, good = agree[keep], good[keep]
    if len(agree) < 10 or good.min() == good.max():
        return {"fitted": False, "people": int(len(agree))}

    def nll(theta: np.ndarray) -> float:
        z = theta[0] * (agree - theta[1])
        return float(np.mean(np.logaddexp(0.0, -z) * good + np.logaddexp(0.0, z) * (1 - good)))

    res = minimize(nll, x0=np.array([8.0, float(np.median(agree))]), method="Nelder-Mead")
    scale, offset = (float(v) for v in res.x)
    prob = 1.0 / (1.0 + np.exp(-scale * (agree - offset)))
    return {"fitted": True, "good_mm": good_mm, "scale": scale, "offset": offset, "people": int(len(agree)),
            "bins": reliability_bins(prob, good)}


def reliability_bins(predicted: np.ndarray, observed: np.ndarray) -> list[dict]:
    """Reliability table of a predicted probability: per quarter of [0, 1], the people in it,
    their mean prediction and the observed share of ``observed`` (bool or 0/1)."""
    bins = []
    for lo, hi in ((0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.01)):
        sel = (predicted >= lo) & (predicted < hi)
        if sel.any():
            bins.append({"predicted": f"{lo:.2f}-{min(hi, 1.0):.2f}", "people": int(sel.sum()),
                         "mean_predicted": float(predicted[sel].mean()),
                         "observed": float(np.mean(observed[sel]))})
    return bins


def format_table(table: list[dict]) -> str:
    head = ("| condition | method | people | MPJPE | MPJPE vis | PA-MPJPE | PA-MPJPE vis | PVE | PCKh@0.5 "
            "| iters | ms/person | ms/iter |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in table:
        lines.append(f"| {r['condition']} | {r['method']} | {r['people']} | {r['mpjpe']:.1f} | "
                     f"{r['mpjpe_vis']:.1f} | {r['pa_mpjpe']:.1f} | {r['pa_mpjpe_vis']:.1f} | {r['pve']:.1f} | "
                     f"{r['pckh']:.3f} | {r['iters']:.1f} | {r['ms']:.0f} | {r['ms_per_iter']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=300)
    parser.add_argument("--ablation-people", type=int, default=100)
    parser.add_argument("--config", default=None)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: robust on a shared 2-core CPU, docs/performance.md)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "results.md"))
    parser.add_argument("--json-out", default=str(ROOT / "out" / "occlusion_bench.json"))
    parser.add_argument("--from-json", help="rewrite the docs from a previous run's JSON (no fitting)")
    parser.add_argument("--shard", default="0/1",
                        help="K/N: run people i with i %% N == K only (run N shards in parallel, "
                             "one per core, then --merge their JSON files)")
    parser.add_argument("--cases-cache", metavar="NPZ",
                        help="keep the test set (crops, truth, adversarial positions) in this file and "
                             "reuse it when people, shard, seeds and weights match")
    parser.add_argument("--limit", type=int, default=0,
                        help="fit only people with index < N of the (cached) test set (0: all)")
    parser.add_argument("--build-only", action="store_true",
                        help="build (and cache) the test set, then stop")
    parser.add_argument("--merge", nargs="+", metavar="JSON",
                        help="combine the per-person rows of shard runs into one report (no fitting)")
    args = parser.parse_args(argv)
    if args.from_json:
        summary = json.loads(Path(args.from_json).read_text())
        write_results(args, summary, format_table(summary["table"]))
        return 0
    if args.merge:
        return merge_shards(args)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = with_weights_config(load_config(args.config))
    body = BodyModel(resolve_path(config.body.model_path), num_betas=config.body.num_betas)
    backend, bank = load_backend(config)
    regressor = Regressor(backend, body, config.net.crop_size)
    t0 = time.perf_counter()
    cases = cached_cases(args, config, body, regressor)
    if args.limit > 0:  # same people and start bodies as the full set, fewer of them
        cases = [c for c in cases if c.index < args.limit]
    build_s = time.perf_counter() - t0
    if args.build_only:
        LOG.info("test set ready (%d crops, %.0f s); --build-only: no fitting", len(cases), build_s)
        return 0
    fitters = {name: Fitter.from_config(cfg, body, bank) for name, cfg in method_configs(config).items()}
    from_landmarks = config.fit.init_source == "landmarks"
    source = KeypointSource("blazepose" if from_landmarks else config.fit.keypoint_source, config)
    use_keypoints = config.fit.keypoint_source == "blazepose"
    body_fitter = (LandmarkBodyFitter.from_config(body, config.landmark_fit, fitters["nbf"].pose_prior)
                   if from_landmarks else None)
    reg_ms, start_ms, landmark_starts = [], [], 0
    items: list[dict] = []
    for case in tqdm(cases, desc="fitting", file=sys.stderr):
        start = time.perf_counter()
        pixels = case.image.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        net = backend.run(pixels)
        regression = initial_body(net, [case.camera], config.net.crop_size)
        reg_ms.append((time.perf_counter() - start) * 1e3)
        found = source.landmarks(case)
        keypoints = source.keypoints_from(found) if use_keypoints else None
        start = time.perf_counter()
        init, alternatives, used, cues = landmark_start(body_fitter, case, found, regression)
        start_ms.append((time.perf_counter() - start) * 1e3)
        landmark_starts += used
        methods = MAIN_METHODS + (ABLATIONS if case.index < args.ablation_people else ())
        for name in methods:
            if name == "regression":  # the regression head's body, whatever the start
                item = evaluate_case(case, fitters[name], net, regression, body, iterate=False,
                                     keypoints=keypoints)
            else:
                item = evaluate_case(case, fitters[name], net, init, body, iterate=True,
                                     keypoints=keypoints, alternatives=alternatives)
                if config.fit.confidence_source == "landmarks":  # as Pipeline.process sets it
                    item["confidence"] = person_confidence(cues, config.fit.person_confidence,
                                                           config.fit.confidence_without_landmarks)
            items.append({"condition": case.condition, "method": name, "person": case.index, **item})
        if from_landmarks:
            item = evaluate_case(case, fitters["nbf"], net, init, body, iterate=False, keypoints=keypoints)
            items.append({"condition": case.condition, "method": "landmark-start", "person": case.index, **item})
            items.append({"condition": case.condition, "method": "blazepose-world", "person": case.index,
                          **evaluate_world_landmarks(case, found)})
    summary = summarise_items(items, {
        "keypoints": config.fit.keypoint_source, "keypoint_misses": source.misses,
        "config_file": args.config or "", "run_tag": Path(args.json_out).stem.rsplit("_", 1)[0]
        if args.shard != "0/1" else Path(args.json_out).stem,
        "regression_ms_per_crop": float(np.mean(reg_ms)), "regression_crops": len(reg_ms),
        "init_source": config.fit.init_source, "landmark_starts": landmark_starts,
        "landmark_start_ms": float(np.mean(start_ms)),
        "test_set_build_s": build_s, "people": args.people, "ablation_people": args.ablation_people,
        "shard": args.shard,
        "config": {"fit": dataclasses.asdict(config.fit), "nbv": dataclasses.asdict(config.nbv)}})
    return report(args, summary)


def parse_shard(text: str) -> tuple[int, int]:
    """"K/N" -> (K, N) with 0 <= K < N."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise SystemExit(f"--shard must be K/N, got {text!r}") from None
    if not 0 <= k < n:
        raise SystemExit(f"--shard K/N needs 0 <= K < N, got {text!r}")
    return k, n


def summarise_items(items: list[dict], meta: dict) -> dict:
    """The report's numbers from per-person rows (one dict per person, condition and method)."""
    rows: dict[tuple[str, str], list[dict]] = defaultdict(list)
    subset = int(meta.get("ablation_people", 0))
    for it in items:
        rows[(it["condition"], it["method"])].append(it)
        # The main methods again on the ablation people only, so ablations compare like with like.
        if subset and it["method"] in MAIN_METHODS and it["person"] < subset:
            rows[(it["condition"], subset_name(it["method"], subset))].append(it)
    vis = {c: visibility_quality(rows[(c, "nbf")]) for c in ("clean", "occluders", "advocc40", "advocc80")}
    nbf_items = [it for (c, m), group in rows.items() if m == "nbf" for it in group]
    return {"table": summarise(rows), "visibility": vis, "confidence": confidence_quality(nbf_items),
            "calibration": fit_confidence_calibration(nbf_items), **meta,
            "items": [jsonable(it) for it in items]}


def subset_name(method: str, people: int) -> str:
    """Table name of a main method restricted to the first ``people`` (the ablation subset)."""
    return f"{method} [first {people}]"


def jsonable(item: dict) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in item.items()}


def merge_shards(args) -> int:
    """One report from the JSON files of ``--shard`` runs (same people/ablation settings)."""
    parts = [json.loads(Path(p).read_text()) for p in args.merge]
    first = parts[0]
    for part in parts[1:]:
        for key in ("people", "ablation_people", "config", "keypoints"):
            if part.get(key) != first.get(key):
                raise SystemExit(f"--merge: shards disagree on {key}")
    items = [{**it, "vis_pred": np.asarray(it["vis_pred"], bool), "vis_true": np.asarray(it["vis_true"], bool)}
             for part in parts for it in part["items"]]
    people = {it["person"] for it in items}
    if len(people) != first["people"]:
        raise SystemExit(f"--merge: {len(people)} people in the shards, expected {first['people']}")
    crops = sum(p["regression_crops"] for p in parts)
    meta = {"regression_ms_per_crop": sum(p["regression_ms_per_crop"] * p["regression_crops"]
                                          for p in parts) / crops,
            "regression_crops": crops, "test_set_build_s": sum(p["test_set_build_s"] for p in parts),
            "people": first["people"], "ablation_people": first["ablation_people"],
            "shard": f"merged from {len(parts)} shards", "config": first["config"],
            "keypoints": first.get("keypoints", "network"), "config_file": first.get("config_file", ""),
            "run_tag": first.get("run_tag", "occlusion_bench"),
            "keypoint_misses": sum(p.get("keypoint_misses", 0) for p in parts)}
    return report(args, summarise_items(items, meta))


def report(args, summary: dict) -> int:
    """Print the table and the final JSON line; write the docs page and the JSON file."""
    text = format_table(summary["table"])
    print(text)
    write_results(args, summary, text)
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(summary, indent=1, default=float))
    print(json.dumps({"benchmark": "occlusion", **{f"{r['condition']}/{r['method']}/mpjpe": round(r["mpjpe"], 1)
                                                   for r in summary["table"]}}))
    return 0


def target_checks(table: list[dict]) -> list[str]:
    """The issue's targets, computed from the table (lines of markdown)."""
    row = {(r["condition"], r["method"]): r for r in table}
    lines = []

    def change(cond: str, method: str, base: str, key: str = "mpjpe") -> str:
        a, b = row.get((cond, method)), row.get((cond, base))
        if a is None or b is None:
            return "n/a"
        return f"{a[key]:.1f} vs {b[key]:.1f} mm ({100.0 * (a[key] / b[key] - 1.0):+.1f} %)"

    lines.append(f"- AdvOcc@80, NBF vs regression (target: at least -25 %): MPJPE "
                 f"{change('advocc80', 'nbf', 'regression')}; PA-MPJPE "
                 f"{change('advocc80', 'nbf', 'regression', 'pa_mpjpe')}.")
    lines.append(f"- AdvOcc@80, NBF vs keypoint-only fitting (target: better): MPJPE "
                 f"{change('advocc80', 'nbf', 'keypoint-fit')}; PA-MPJPE "
                 f"{change('advocc80', 'nbf', 'keypoint-fit', 'pa_mpjpe')}.")
    lines.append(f"- Clean, NBF vs regression (target: within +3 %): MPJPE {change('clean', 'nbf', 'regression')}.")
    subsets = sorted({r["method"] for r in table if r["method"].startswith("nbf [first ")})
    for cond in ("clean", "occluders", "advocc40", "advocc80"):
        if not subsets:
            break
        nbf30 = row.get((cond, subsets[0]))
        reg = row.get((cond, subsets[0].replace("nbf", "regression", 1)))
        nbf120 = row.get((cond, "nbf-120-iters"))
        if nbf30 is None or reg is None or nbf120 is None:
            continue
        gain30, gain120 = reg["mpjpe"] - nbf30["mpjpe"], reg["mpjpe"] - nbf120["mpjpe"]
        its = f"{nbf30['iters']:.0f} iterations"  # the default budget's (fit.max_iters)
        if gain120 <= max(gain30, 0.0):
            share = f"met (120 iterations are no better than {its})"
        else:
            share = f"{its} reach {100.0 * max(gain30, 0.0) / gain120:.0f} % of the gain of 120"
        lines.append(f"- {cond}, budget (target: the default budget, {its}, reaches 90 % of the gain of 120; "
                     f"{nbf30['people']} people): regression {reg['mpjpe']:.1f}, {its} "
                     f"{nbf30['mpjpe']:.1f}, 120 iterations {nbf120['mpjpe']:.1f} mm MPJPE; {share} "
                     f"(PA-MPJPE {reg['pa_mpjpe']:.1f} / {nbf30['pa_mpjpe']:.1f} / {nbf120['pa_mpjpe']:.1f}).")
    return lines


def write_results(args, summary: dict, table_text: str) -> None:
    vis_lines = "\n".join(f"| {c} | {v['accuracy']:.3f} | {v['visible_recall']:.3f} | {v['occluded_recall']:.3f} |"
                          for c, v in summary["visibility"].items())
    conf = summary["confidence"]
    conf_lines = "\n".join(f"| {b['confidence']} | {b['people']} | {b['mpjpe']:.1f} | "
                           f"{list(b.values())[3]:.2f} |" for b in conf["bins"])
    cal = summary["calibration"]
    if cal.get("fitted"):
        cal_lines = "\n".join(f"| {b['predicted']} | {b['people']} | {b['mean_predicted']:.2f} | {b['observed']:.2f} |"
                              for b in cal["bins"])
        cal_text = (f"Logistic fit of P(MPJPE < {cal['good_mm']:.0f} mm) on the feature agreement over "
                    f"{cal['people']} NBF fits: `fit.confidence_scale: {cal['scale']:.2f}`, "
                    f"`fit.confidence_offset: {cal['offset']:.3f}` (reliability of the fitted map below; "
                    f"the shipped config uses these values when they came from this run).\n\n"
                    f"| predicted | people | mean predicted | observed share |\n|---|---:|---:|---:|\n{cal_lines}")
    else:
        cal_text = f"Not fitted (too few people or one outcome only: {cal.get('people', 0)} fits)."
    config_arg = f" --config {summary['config_file']}" if summary.get("config_file") else ""
    shown_out = Path(os.path.relpath(Path(args.out).resolve(), ROOT)).as_posix()
    run = (f".venv/bin/python benchmarks/occlusion_bench.py --people {summary['people']} "
           f"--ablation-people {summary['ablation_people']}{config_arg}")
    shard = str(summary.get("shard", "0/1"))
    tag = summary.get("run_tag", "occlusion_bench")
    if shard.startswith("merged from "):
        n = int(shard.split()[2])
        command = "\n".join([f"{run} --shard {k}/{n} --cases-cache cache/bench/test{summary['people']}_{k}.npz "
                              f"--json-out out/{tag}_{k}.json --out out/{tag}_{k}.md &"
                              for k in range(n)] + ["wait"]
                             + [".venv/bin/python benchmarks/occlusion_bench.py --merge "
                                + " ".join(f"out/{tag}_{k}.json" for k in range(n))
                                + f" --json-out out/{tag}.json --out {shown_out}"])
    else:
        command = run
    source = summary.get("keypoints", "network")
    if source == "blazepose":
        keypoint_text = (f"2D keypoints of the fits (keypoint-only and NBF alike): BlazePose full (ONNX, "
                         f"in-process) on each crop, on the box the crop was cut around, mapped onto "
                         f"SMPL's joints (the paper used OpenPose); where it found nobody "
                         f"({summary.get('keypoint_misses', 0)} of {summary['regression_crops']} crops) "
                         f"the network's heatmaps.")
    elif source == "mediapipe":  # results made before the MediaPipe package path was removed
        keypoint_text = (f"2D keypoints of the fits (keypoint-only and NBF alike): MediaPipe BlazePose "
                         f"(full, the since removed MediaPipe package path) on each crop, mapped onto "
                         f"SMPL's joints; where it found nobody ({summary.get('keypoint_misses', 0)} of "
                         f"{summary['regression_crops']} crops) the network's heatmaps.")
    else:
        keypoint_text = "2D keypoints of the fits (keypoint-only and NBF alike): the network's heatmaps."
    fit = summary["config"]["fit"]
    if summary.get("init_source") == "landmarks":
        start = (f"The fits start from our body fitted to BlazePose's landmarks "
                 f"(`fit.init_source: landmarks`, docs/initial_body.md; "
                 f"{summary.get('landmark_starts', 0)} of {summary['regression_crops']} crops, "
                 f"{summary.get('landmark_start_ms', float('nan')):.1f} ms each; the regression head's "
                 f"body where BlazePose found nobody or too few confident landmarks). Rows "
                 f"`landmark-start`: that body, not iterated; `blazepose-world`: BlazePose's own world "
                 f"landmarks mapped to our joints, root-relative, as a MediaPipe user gets them (people "
                 f"it misses left out); `regression`: the regression head's body (the old start). "
                 f"Start hypotheses: that body, its front/back-turned reading")
    else:
        start = "Start hypotheses: the regressor's body"
    hypotheses = (start
                  + (", its flipped twin" if fit.get("flip_hypothesis") else "")
                  + (f", {fit['turn_hypotheses'] - 1} turns about the vertical axis"
                     if fit.get("turn_hypotheses", 1) > 1 else "") + ".")
    doc = f"""# Occlusion benchmark results

Generated by `benchmarks/occlusion_bench.py` (do not edit by hand):

```bash
{command}
```

Setup: {summary['people']} held-out synthetic people (test split: seeds from {TEST_SEED_BASE}, held-out
textures and background photos, no box jitter), crops of the inference rule; ablations on the first
{summary['ablation_people']}. SMPL's 24 joints, pelvis-aligned, millimetres. Conditions: `clean`;
`occluders` (the generator's random 3D occluders); `advocc40` / `advocc80` (3DPW-AdvOcc protocol:
square held-out texture of side 40 / 80 at 224-px scale, stride 10, worst regression position per
person). Visible joints: generator visibility >= 0.5 and not under the patch. {keypoint_text}
{hypotheses} Regression:
{summary['regression_ms_per_crop']:.1f} ms per crop (torch, CPU). Time per person includes the
hypothesis checks and the final assessment render.

Two runs are kept: `docs/results.md` with BlazePose's 2D keypoints for the fits (as the paper
used OpenPose's; the default config) and `docs/results_network_keypoints.md` with the network's
own heatmaps (`--config config/hog.yaml`); what limits both: `docs/fit_tuning.md`.

{table_text}

## Targets (computed from the table above)

{chr(10).join(target_checks(summary["table"]))}

## Visibility (NBF fit, joint visible if visibility >= 0.5)

| condition | accuracy | visible recall | occluded recall |
|---|---:|---:|---:|
{vis_lines}

## Confidence (NBF fit, all conditions)

Spearman correlation of confidence with -MPJPE: {conf['spearman']:.3f}

| confidence | people | MPJPE | share below 100 mm |
|---|---:|---:|---:|
{conf_lines}

### Calibration

{cal_text}
"""
    Path(args.out).write_text(doc)


if __name__ == "__main__":
    sys.exit(main())
