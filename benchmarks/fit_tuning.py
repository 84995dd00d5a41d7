"""Fitting-settings sweep on a *validation* range of synthetic people (seeds 900000+ of the test
split; the reported benchmark starts at 950000). Prints MPJPE / PA-MPJPE / visible-joint MPJPE per
condition and variant. Used to choose FitConfig's lr, pose_prior_weight and keypoint_weight:

    .venv/bin/python benchmarks/fit_tuning.py 8 --config PIPELINE.yaml
"""
import sys, dataclasses, time, numpy as np, torch
sys.path.insert(0, "/work/main/benchmarks")
torch.set_num_threads(1)
import occlusion_bench as B
from nbf_ros.config import load_config, resolve_path
from nbf_ros.body.model import BodyModel
from nbf_ros.inference.backends import make_backend
from nbf_ros.inference.pipeline import initial_body, with_weights_config
from nbf_ros.fitting.fitter import Fitter
import argparse
parser = argparse.ArgumentParser()
parser.add_argument("people", type=int)
parser.add_argument("--config", default=None)
args = parser.parse_args()
B.TEST_SEED_BASE = 900_000  # the validation range
config = with_weights_config(load_config(args.config))
body = BodyModel(resolve_path(config.body.model_path)); backend = make_backend(config)
class A: people = args.people
cases = B.build_cases(A, config, body, B.Regressor(backend, body, config.net.crop_size))
r = dataclasses.replace
base = r(config, fit=r(config.fit, budget_ms=1e9))
variants = {
  "regression": (base, False),
  "nbf lr.01 prior.002 kp.3": (r(base, fit=r(base.fit, lr=0.01, pose_prior_weight=0.002, keypoint_weight=0.3)), True),
  "nbf no flip": (r(base, fit=r(base.fit, flip_hypothesis=False)), True),
  "nbf prior.02 lr.01": (r(base, fit=r(base.fit, lr=0.01)), True),
  "nbf prior.05": (r(base, fit=r(base.fit, pose_prior_weight=0.05)), True),
  "nbf kp.3": (r(base, fit=r(base.fit, keypoint_weight=0.3)), True),
  "nbf (defaults)": (base, True),
  "kp-fit": (r(base, fit=r(base.fit, feature_weight=0.0, keypoint_weight=1.0)), True),
}
fitters = {k: Fitter.from_config(c, body) for k, (c, _) in variants.items()}
res = {}
for case in cases:
    net = backend.run(case.image.transpose(2,0,1)[None].astype(np.float32)/255.)
    init = initial_body(net, [case.camera], config.net.crop_size)
    for k, (c, it) in variants.items():
        e = B.evaluate_case(case, fitters[k], net, init, body, iterate=it)
        res.setdefault((case.condition, k), []).append((e["mpjpe"], e["pa_mpjpe"], e["mpjpe_vis"]))
for cond in ("clean", "occluders", "advocc40", "advocc80"):
    for k in variants:
        a = np.array(res[(cond, k)]); print(f"{cond:10s} {k:18s} MPJPE {a[:,0].mean():6.1f} PA {a[:,1].mean():6.1f} vis {np.nanmean(a[:,2]):6.1f}")
