"""`nbf-ros estimate` as a user runs it (exit codes, JSON schema, one-line errors)."""
import json
import subprocess
import sys

import cv2
import pytest

from nbf_ros.config import SyntheticConfig


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    from nbf_ros.body.model import BodyModel
    from nbf_ros.config import resolve_path
    from nbf_ros.data.scene import render_scene

    scene = render_scene(2, SyntheticConfig(split="test"), BodyModel(resolve_path("models/nbf_body.npz")))
    path = tmp_path_factory.mktemp("img") / "people.png"
    cv2.imwrite(str(path), scene.image[..., ::-1])
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbf_ros.apps.cli", *args], capture_output=True, text=True,
                          timeout=300)


def test_estimate_writes_the_interface_json(image_file, untrained_config, tmp_path):
    out = tmp_path / "out.json"
    proc = run_cli("estimate", "--image", str(image_file), "--json", str(out), "--config",
                   untrained_config[1], "--max-iters", "2", "--overlay", str(tmp_path / "ov"))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert set(doc) == {"images", "model"} and set(doc["model"]) == {"body_model", "weights", "backend"}
    image = doc["images"][0]
    assert (image["width"], image["height"]) == (cv2.imread(str(image_file)).shape[1],
                                                cv2.imread(str(image_file)).shape[0])
    assert len(image["people"]) == 1  # full-frame detector: one box
    person = image["people"][0]
    assert len(person["joints3d"]) == 24 and person["fit"]["iterations"] <= 2
    assert (tmp_path / "ov" / "people_overlay.png").is_file()


def test_embedded_defaults_find_the_astronaut_not_her_helmet(tmp_path):
    """The issue's first real photo, with no --config: NanoDet-g boxes her (HOG boxed the
    helmet in her hands and missed her) and BlazePose gives the fit her keypoints."""
    from skimage import data

    from nbf_ros.geometry.boxes import box_iou

    photo, out = tmp_path / "astronaut.png", tmp_path / "out.json"
    cv2.imwrite(str(photo), data.astronaut()[..., ::-1])
    proc = run_cli("estimate", "--image", str(photo), "--json", str(out), "--max-iters", "2")
    assert proc.returncode == 0, proc.stderr
    people = json.loads(out.read_text())["images"][0]["people"]
    boxes = [p["bbox"] for p in people]
    assert box_iou([[25.0, 15.0, 370.0, 511.0]], boxes).max() > 0.5, boxes  # her, hand-labelled
    assert box_iou([[275.0, 345.0, 511.0, 511.0]], boxes).max() < 0.3, boxes  # not the helmet


def test_no_fit_and_intrinsics_options(image_file, untrained_config, tmp_path):
    out = tmp_path / "out.json"
    proc = run_cli("estimate", "--image", str(image_file), "--json", str(out), "--config",
                   untrained_config[1], "--no-fit", "--fx", "500", "--fy", "500", "--cx", "320", "--cy", "240")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["images"][0]["people"][0]["fit"]["iterations"] == 0


@pytest.mark.parametrize("args, fragment", [
    (["--image", "missing.png"], "no such image"),
    (["--fx", "500"], "must be given together"),
    (["--camera-info", "missing.yaml"], "no such camera_info"),
    (["--max-iters", "-1"], "max-iters"),
])
def test_errors_are_one_line_and_nonzero(image_file, untrained_config, tmp_path, args, fragment):
    if "--image" not in args:
        args = ["--image", str(image_file), *args]
    proc = run_cli("estimate", *args, "--json", str(tmp_path / "o.json"), "--config", untrained_config[1])
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and fragment in lines[0], proc.stderr


def test_corrupt_image_and_bad_config(untrained_config, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8garbage")
    proc = run_cli("estimate", "--image", str(bad), "--json", str(tmp_path / "o.json"))
    assert proc.returncode == 1 and "bad.jpg" in proc.stderr
    cfg = tmp_path / "c.yaml"
    cfg.write_text("fit:\n  max_iterz: 3\n")
    proc = run_cli("estimate", "--image", str(bad), "--json", str(tmp_path / "o.json"), "--config", str(cfg))
    assert proc.returncode == 1


def test_video_frames_are_tracked(image_file, untrained_config, tmp_path):
    frame = cv2.imread(str(image_file))
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (frame.shape[1], frame.shape[0]))
    for _ in range(3):
        writer.write(frame)
    writer.release()
    out = tmp_path / "v.json"
    proc = run_cli("estimate", "--video", str(video), "--json", str(out), "--config", untrained_config[1],
                   "--no-fit")
    assert proc.returncode == 0, proc.stderr
    images = json.loads(out.read_text())["images"]
    assert [im["path"] for im in images] == [f"{video}#{i}" for i in range(3)]
    ids = [[p["id"] for p in im["people"]] for im in images]
    assert ids[0] == ids[1] == ids[2]  # the tracker keeps the id across frames


@pytest.mark.parametrize("problem", ["missing_image", "missing_weights", "corrupt_image"])
def test_user_errors_are_one_stderr_line(image_file, tmp_path, problem):
    """Every NbfError (here InputError and WeightsError) ends the CLI with exactly one line
    ``nbf-ros estimate: error: ...`` on stderr and exit code 1, never a traceback."""
    image, config, fragment = str(image_file), [], ""
    if problem == "missing_image":
        image, fragment = str(tmp_path / "missing.png"), "missing.png"
    elif problem == "missing_weights":
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"inference:\n  weights_path: {tmp_path / 'nope.pt'}\ndetector:\n  kind: full_frame\n")
        config, fragment = ["--config", str(cfg)], "nope.pt"
    else:
        image, fragment = str(tmp_path / "corrupt.png"), "corrupt.png"
        (tmp_path / "corrupt.png").write_bytes(b"not an image at all")
    proc = run_cli("estimate", "--image", image, "--json", str(tmp_path / "o.json"), *config)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("nbf-ros estimate: error: ") and fragment in lines[0]
