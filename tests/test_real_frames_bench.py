"""benchmarks/real_frames_bench.py's scoring: MediaPipe's landmark box (clipped, none without a
pose), the shared real-frame matching (messi5's crowd band is not a false person), and a clear
error when the MediaPipe interpreter cannot run the reference script. No models, no opencv-doc."""
import sys
from pathlib import Path

import numpy as np
import pytest

from script_loader import load_script

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "real_frames_bench.py"


@pytest.fixture(scope="module")
def bench():
    return load_script(BENCH, "real_frames_bench_under_test")


def test_mediapipe_box_bounds_and_clips(bench):
    assert bench.mediapipe_box(None, 100, 80).shape == (0, 4)
    landmarks = [[10.0, 5.0], [50.0, 95.0], [-20.0, 40.0]]  # one joint extrapolated past the left
    box = bench.mediapipe_box(landmarks, 100, 80)
    np.testing.assert_allclose(box, [[-0.5, 5.0, 50.0, 79.5]])


def test_score_real_counts_and_crowd_band(bench):
    messi = np.array(bench.REAL["messi5"], np.float64)
    crowd = np.array([[200.0, 20.0, 240.0, 120.0]])  # a spectator inside the crowd band
    stray = np.array([[470.0, 250.0, 540.0, 340.0]])  # below the band, no one labelled there
    hit, false = bench.score_real("messi5", np.vstack([messi, crowd, stray]), np.ones(3))
    assert hit.tolist() == [True] and false == 1
    count = bench.Count(*bench.score_real("basketball1", messi, np.ones(1)))
    assert count.cells() == [0, 2, 1]


def test_mediapipe_failure_is_reported(bench):
    images = {"baboon": np.zeros((8, 8, 3), np.uint8)}
    with pytest.raises(RuntimeError, match="failed"):  # our venv has no mediapipe
        bench.run_mediapipe(sys.executable, images, 1, 1)
