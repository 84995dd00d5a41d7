"""Appearance of synthetic scenes: solid textures, clothing/skin, shading, backgrounds, artefacts.

Everything here exists so that learned features ignore what does not matter (colour, texture,
light, background, compression) and keep what does (which body surface point a pixel shows).

Train / held-out split (docs/data.md):
- A procedural texture or background is a deterministic function of an integer *texture id*.
  The train split draws even ids, the test split odd ids, so no held-out texture is ever seen in
  training.
- Background photos: the usable offline photos (scikit-image's bundled images, and the Debian
  opencv-doc images when that package is installed at run time) are listed by name, sorted; a
  photo is held out when its index in its sorted list is 3 mod 4, otherwise it is for training.
  Photos that show people (astronaut, camera, messi5, basketball*, lfw faces...) are never used:
  their person pixels would be labelled background.

Colours are float RGB in [0, 1] until :func:`finish_image` turns them into uint8.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np

from nbf_ros.config import SyntheticAppearanceConfig

LOG = logging.getLogger(__name__)

Split = Literal["train", "test"]
_TEXTURE_ID_RANGE = 1 << 30

# scikit-image images bundled in the wheel (no download), without people.
SKIMAGE_PHOTOS: tuple[str, ...] = (
    "brick", "cell", "chelsea", "clock", "coffee", "coins", "colorwheel", "grass", "gravel",
    "horse", "hubble_deep_field", "immunohistochemistry", "logo", "moon", "page", "retina",
    "rocket", "text",
)
# Debian opencv-doc sample images without people (used only if present; never committed).
OPENCV_DOC_DIR = Path("/usr/share/doc/opencv-doc/examples/data")
OPENCV_DOC_PHOTOS: tuple[str, ...] = (
    "HappyFish.jpg", "aero1.jpg", "aero3.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "blox.jpg",
    "board.jpg", "box_in_scene.png", "building.jpg", "butterfly.jpg", "cards.png", "chicky_512.png",
    "fruits.jpg", "graf1.png", "home.jpg", "leuvenA.jpg", "leuvenB.jpg", "orange.jpg",
    "rubberwhale1.png", "smarties.png", "squirrel_cls.jpg", "starry_night.jpg", "stuff.jpg",
    "sudoku.png",
)
HELD_OUT_EVERY = 4  # index % 4 == 3 in the sorted list -> held out
PROCEDURAL_PIXELS = 65536  # procedural background textures are evaluated on this many points at most


def texture_id(rng: np.random.Generator, split: Split) -> int:
    """A texture id of the split: even for train, odd for test."""
    return int(2 * rng.integers(_TEXTURE_ID_RANGE) + (1 if split == "test" else 0))


def split_names(names: tuple[str, ...], split: Split) -> tuple[str, ...]:
    """The names of ``split`` under the sorted-index rule (index % 4 == 3 is held out)."""
    ordered = sorted(names)
    held = [n for i, n in enumerate(ordered) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    return tuple(held) if split == "test" else tuple(n for n in ordered if n not in held)


def photo_sources(split: Split, opencv_doc: bool = True) -> tuple[str, ...]:
    """Photo keys of the split: 'skimage:<name>' and, if ``opencv_doc`` and the Debian package
    is installed, 'opencv:<file>'."""
    keys = [f"skimage:{n}" for n in split_names(SKIMAGE_PHOTOS, split)]
    if opencv_doc and OPENCV_DOC_DIR.is_dir():
        present = tuple(n for n in OPENCV_DOC_PHOTOS if (OPENCV_DOC_DIR / n).is_file())
        keys += [f"opencv:{n}" for n in split_names(present, split)]
    return tuple(keys)


@functools.lru_cache(maxsize=64)
def load_photo(key: str) -> Optional[np.ndarray]:
    """H x W x 3 uint8 RGB photo for a key of :func:`photo_sources`, None if unreadable."""
    try:
        kind, name = key.split(":", 1)
        if kind == "skimage":
            import skimage.data

            img = np.asarray(getattr(skimage.data, name)())
        else:
            import cv2

            bgr = cv2.imread(str(OPENCV_DOC_DIR / name), cv2.IMREAD_COLOR)
            img = None if bgr is None else bgr[..., ::-1]
    except Exception as exc:  # a missing optional photo only removes it from the pool
        LOG.warning("background photo %s unavailable: %s", key, exc)
        return None
    if img is None:
        return None
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.dtype != np.uint8:
        img = (255 * (img.astype(np.float64) / max(float(img.max()), 1e-9))).astype(np.uint8)
    return np.ascontiguousarray(img[..., :3])


# --- solid textures --------------------------------------------------------------------------
@dataclass(frozen=True)
class SolidTexture:
    """A colour field over 3D points (metres), so meshes need no UV map.

    kind: 'plain', 'stripes' (along ``direction``), 'checks' (three orthogonal sine products) or
    'noise' (a sum of random sinusoids, thresholded softly into two colours).
    """

    kind: str
    colour_a: np.ndarray
    colour_b: np.ndarray
    frequency: float
    basis: np.ndarray        # 3 x 3 orthonormal rows (stripe direction first)
    phases: np.ndarray       # (3,)
    noise_freqs: np.ndarray  # n x 3 cycles per metre
    noise_phases: np.ndarray
    sharpness: float

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """N x 3 points -> N x 3 colours in [0, 1]."""
        if self.kind == "plain":
            return np.broadcast_to(self.colour_a, (points.shape[0], 3)).copy()
        proj = points @ self.basis.T * (2 * np.pi * self.frequency) + self.phases  # N x 3
        if self.kind == "stripes":
            signal = np.sin(proj[:, 0])
        elif self.kind == "checks":
            signal = np.sin(proj[:, 0]) * np.sin(proj[:, 1]) * np.sin(proj[:, 2]) * 4.0
        else:
            waves = points @ self.noise_freqs.T * (2 * np.pi) + self.noise_phases
            signal = np.sin(waves).mean(1) * 3.0
        mix = 0.5 + 0.5 * np.tanh(self.sharpness * signal)
        return self.colour_a + mix[:, None] * (self.colour_b - self.colour_a)


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """Clothing-like colour: often neutral/dark, otherwise any hue (RGB in [0, 1])."""
    if rng.random() < 0.4:
        grey = rng.uniform(0.05, 0.9)
        return np.clip(grey + rng.normal(0, 0.04, 3), 0, 1)
    import colorsys

    h, s, v = rng.random(), rng.uniform(0.2, 0.9), rng.uniform(0.2, 0.95)
    return np.array(colorsys.hsv_to_rgb(h, s, v))


SKIN_TONES = np.array([
    [0.98, 0.85, 0.75], [0.94, 0.76, 0.63], [0.88, 0.67, 0.52], [0.78, 0.57, 0.42],
    [0.67, 0.46, 0.32], [0.55, 0.37, 0.25], [0.42, 0.27, 0.18], [0.3, 0.19, 0.13],
])
HAIR_COLOURS = np.array([[0.05, 0.04, 0.03], [0.25, 0.15, 0.08], [0.5, 0.35, 0.2],
                         [0.85, 0.72, 0.45], [0.6, 0.6, 0.6], [0.45, 0.15, 0.08]])


def make_texture(tex_id: int, base: Optional[np.ndarray] = None, texture_prob: float = 0.6,
                 scale: float = 1.0) -> SolidTexture:
    """The texture of id ``tex_id`` (deterministic); ``base`` fixes the first colour.

    ``scale`` multiplies the spatial frequency (cycles per metre): bodies use ~3-25, large
    background surfaces smaller values.
    """
    rng = np.random.default_rng(tex_id)
    colour_a = random_colour(rng) if base is None else np.asarray(base, dtype=np.float64)
    colour_b = random_colour(rng)
    kind = "plain"
    if rng.random() < texture_prob:
        kind = ("stripes", "checks", "noise")[int(rng.integers(3))]
    basis = _random_basis(rng)
    return SolidTexture(kind=kind, colour_a=colour_a, colour_b=colour_b,
                        frequency=float(np.exp(rng.uniform(np.log(3.0), np.log(25.0)))) * scale,
                        basis=basis, phases=rng.uniform(0, 2 * np.pi, 3),
                        noise_freqs=rng.normal(0, 6.0 * scale, (6, 3)),
                        noise_phases=rng.uniform(0, 2 * np.pi, 6),
                        sharpness=float(rng.uniform(1.0, 8.0)))


def _random_basis(rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return q.T


# --- clothing regions on the body ------------------------------------------------------------
SKIN, TOP, BOTTOM, SHOES, HAIR = range(5)
NUM_REGIONS = 5
# Region of the vertices skinned mostly by each joint, for long sleeves and long trousers;
# short sleeves turn elbow vertices to skin, shorts turn knee vertices to skin.
_JOINT_REGION = (BOTTOM, BOTTOM, BOTTOM, TOP, BOTTOM, BOTTOM, TOP, SHOES, SHOES, TOP, SHOES, SHOES,
                 SKIN, TOP, TOP, SKIN, TOP, TOP, TOP, TOP, SKIN, SKIN, SKIN, SKIN)
_ELBOWS, _KNEES, _HEAD = (18, 19), (4, 5), 15


def vertex_regions(lbs_weights: np.ndarray, rest_vertices: np.ndarray, joints_rest: np.ndarray,
                   short_sleeves: bool, shorts: bool, hair: bool, hair_line_m: float = 0.04) -> np.ndarray:
    """(V,) clothing region per vertex from its dominant skinning joint (SKIN/TOP/...); hair
    covers the head above ``hair_line_m`` over the head joint, and its back."""
    dominant = np.argmax(lbs_weights, axis=1)
    regions = np.asarray(_JOINT_REGION)[dominant]
    if short_sleeves:
        regions[np.isin(dominant, _ELBOWS)] = SKIN
    if shorts:
        regions[np.isin(dominant, _KNEES)] = SKIN
    if hair:
        head = dominant == _HEAD
        top = rest_vertices[:, 1] > joints_rest[_HEAD, 1] + hair_line_m
        back = rest_vertices[:, 2] < joints_rest[_HEAD, 2] - 0.02
        regions[head & (top | back)] = HAIR
    return regions


@dataclass(frozen=True)
class Face:
    """Eyes, brows, nostrils and mouth painted on the front of the head (rest-pose metres).

    Positions are offsets from the nose tip (the head's most forward vertex in the rest pose),
    x to the body's left, y up, taken from an adult face's proportions; each feature is an
    ellipse in the x-y plane, so a point's colour depends only on where it lies on the face.
    """

    nose_tip: np.ndarray  # (3,) rest pose
    vertices: np.ndarray  # (V,) bool: skin vertices of the face (front of the head)
    skin: np.ndarray      # (3,) the person's skin colour
    brow: np.ndarray      # (3,) brow colour (the hair's, darkened)

    # (centre x, centre y, semi-axis x, semi-axis y), metres; x mirrored for the pairs.
    EYE = (0.031, 0.030, 0.011, 0.0055)
    IRIS = (0.031, 0.030, 0.0045, 0.0045)
    BROW = (0.034, 0.047, 0.016, 0.0035)
    NOSTRIL = (0.008, -0.012, 0.004, 0.0025)
    MOUTH = (0.0, -0.038, 0.021, 0.0045)
    DEPTH_M = 0.06  # points less than this behind the nose tip belong to the face

    def paint(self, points: np.ndarray, colours: np.ndarray) -> np.ndarray:
        """N x 3 rest-pose face points, their N x 3 skin colours -> colours with the face."""
        rel = points - self.nose_tip
        out = colours.copy()
        front = rel[:, 2] > -self.DEPTH_M
        for feature, colour, pair in ((self.BROW, self.brow, True), (self.EYE, SCLERA, True),
                                      (self.IRIS, IRIS, True), (self.NOSTRIL, self.skin * 0.45, True),
                                      (self.MOUTH, self.skin * LIP_TINT, False)):
            out[front & _inside(rel, feature, pair)] = colour
        return out


SCLERA = np.array([0.9, 0.88, 0.85])
# With a face the hair starts higher, above the brows (0.04 m over the head joint hides them).
FOREHEAD_HAIR_LINE_M = 0.06
IRIS = np.array([0.12, 0.08, 0.05])
LIP_TINT = np.array([0.78, 0.5, 0.5])
_HEAD_JOINT = 15


def _inside(rel: np.ndarray, feature: tuple[float, float, float, float], pair: bool) -> np.ndarray:
    """Points whose (x, y) offset lies inside the feature's ellipse (both sides when ``pair``)."""
    cx, cy, ax, ay = feature
    x = np.abs(rel[:, 0]) if pair else rel[:, 0]
    return ((x - cx) / ax) ** 2 + ((rel[:, 1] - cy) / ay) ** 2 <= 1.0


def make_face(lbs_weights: np.ndarray, rest_vertices: np.ndarray, regions: np.ndarray,
              skin: np.ndarray, hair: np.ndarray) -> Face:
    """The face of a body: nose tip and face vertices from the rest mesh (head skin in front)."""
    head = np.argmax(lbs_weights, axis=1) == _HEAD_JOINT
    tip = rest_vertices[np.flatnonzero(head)[np.argmax(rest_vertices[head, 2])]]
    vertices = head & (regions == SKIN) & (rest_vertices[:, 2] > tip[2] - Face.DEPTH_M)
    return Face(tip, vertices, np.asarray(skin, np.float64), np.asarray(hair, np.float64) * 0.6)


@dataclass(frozen=True)
class Outfit:
    """One person's look: a texture per clothing region, the per-vertex region, the face."""

    textures: tuple[SolidTexture, ...]
    regions: np.ndarray  # (V,)
    face: Optional[Face] = None


def random_outfit(rng: np.random.Generator, split: Split, lbs_weights: np.ndarray,
                  rest_vertices: np.ndarray, joints_rest: np.ndarray,
                  cfg: SyntheticAppearanceConfig) -> Outfit:
    """Skin tone, hair, top, bottom and shoes with their textures (ids from the split)."""
    skin = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))] * rng.uniform(0.9, 1.08, 3)
    hair = HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))]
    textures = (
        make_texture(texture_id(rng, split), base=np.clip(skin, 0, 1), texture_prob=0.0),
        make_texture(texture_id(rng, split), texture_prob=cfg.texture_prob),
        make_texture(texture_id(rng, split), texture_prob=cfg.texture_prob * 0.5),
        make_texture(texture_id(rng, split), texture_prob=0.2),
        make_texture(texture_id(rng, split), base=hair, texture_prob=0.0),
    )
    regions = vertex_regions(lbs_weights, rest_vertices, joints_rest, short_sleeves=rng.random() < 0.4,
                             shorts=rng.random() < 0.25, hair=rng.random() < 0.85,
                             hair_line_m=FOREHEAD_HAIR_LINE_M if cfg.faces else 0.04)
    face = make_face(lbs_weights, rest_vertices, regions, textures[SKIN].colour_a, hair) if cfg.faces else None
    return Outfit(textures=textures, regions=regions, face=face)


def outfit_colours(outfit: Outfit, rest_points: np.ndarray, point_vertex: np.ndarray) -> np.ndarray:
    """N x 3 colours of surface points (rest-pose positions) by the region of their vertex,
    with the face painted on where the outfit has one."""
    colours = np.empty((rest_points.shape[0], 3))
    region = outfit.regions[point_vertex]
    for r in np.unique(region):
        sel = region == r
        colours[sel] = outfit.textures[int(r)](rest_points[sel])
    if outfit.face is not None:
        on_face = outfit.face.vertices[point_vertex]
        colours[on_face] = outfit.face.paint(rest_points[on_face], colours[on_face])
    return colours


# --- shading ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Light:
    """A directional light (unit vector from the surface towards the light, camera frame)."""

    direction: np.ndarray
    ambient: float
    colour: np.ndarray


def random_light(rng: np.random.Generator, cfg: SyntheticAppearanceConfig) -> Light:
    """Light from the camera's hemisphere, mostly from above (-y is up in the optical frame)."""
    d = np.array([rng.normal(0, 0.6), -abs(rng.normal(0.5, 0.5)), -abs(rng.normal(1.0, 0.5))])
    tint = 1.0 + rng.normal(0, 0.05, 3)
    return Light(direction=d / np.linalg.norm(d), ambient=float(rng.uniform(*cfg.ambient)),
                 colour=np.clip(tint, 0.85, 1.15))


def shade(albedo: np.ndarray, normals: np.ndarray, light: Light) -> np.ndarray:
    """Lambertian shading of N x 3 albedos with N x 3 unit normals (two-sided)."""
    lambert = np.abs(normals @ light.direction)
    return albedo * (light.ambient + (1.0 - light.ambient) * lambert)[:, None] * light.colour


# --- backgrounds -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Background:
    """A background defined over full-image pixel coordinates, sampled through any pixel grid.

    ``photo`` (uint8, or None for procedural) is placed on the image by ``photo_affine`` (2 x 3,
    image pixel -> photo pixel); procedural backgrounds mix a colour gradient, a low-frequency
    noise grid over the image, a texture and a few flat rectangles.
    """

    photo: Optional[np.ndarray]
    photo_affine: np.ndarray
    gradient: np.ndarray     # 3 x 3: colour = g0 + g1 * x/W + g2 * y/H
    noise_grid: np.ndarray   # gh x gw x 3, spanning the image
    texture: SolidTexture
    texture_weight: float
    rects: np.ndarray        # R x 7: x0, y0, x1, y1 (fractions), rgb
    size: tuple[int, int]    # image width, height

    def render(self, crop_to_image: np.ndarray, width: int, height: int) -> np.ndarray:
        """height x width x 3 float colours at the pixels mapped by ``crop_to_image`` (2 x 3)."""
        import cv2

        if self.photo is not None:
            to_photo = _compose(self.photo_affine, crop_to_image)
            out = cv2.warpAffine(self.photo, to_photo, (width, height), flags=cv2.INTER_LINEAR
                                 | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
            return out.astype(np.float64) / 255.0
        colour = self._smooth(crop_to_image, width, height)
        img_w, img_h = self.size
        gh, gw = self.noise_grid.shape[:2]
        to_grid = _compose(np.array([[gw / img_w, 0, -0.5], [0, gh / img_h, -0.5]]), crop_to_image)
        noise = cv2.warpAffine(self.noise_grid, to_grid, (width, height),
                               flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
        colour += noise * (1.0 - self.texture_weight)
        u, v = _pixel_grid(crop_to_image, width, height)
        x, y = u / img_w, v / img_h
        for x0, y0, x1, y1, *rgb in self.rects:
            inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
            colour[inside] = rgb
        return np.clip(colour, 0.0, 1.0)

    def _smooth(self, crop_to_image: np.ndarray, width: int, height: int) -> np.ndarray:
        """Gradient mixed with the texture; evaluated on a grid of at most ~PROCEDURAL_PIXELS
        points and resized (the texture is the costly part of a large procedural background)."""
        import cv2

        factor = max(1, int(np.ceil(np.sqrt(width * height / PROCEDURAL_PIXELS))))
        w, h = -(-width // factor), -(-height // factor)
        to_full = np.array([[factor, 0.0, 0.5 * factor - 0.5], [0.0, factor, 0.5 * factor - 0.5]])
        u, v = _pixel_grid(_compose(crop_to_image, to_full), w, h)
        img_w, img_h = self.size
        gradient = self.gradient[0] + self.gradient[1] * (u / img_w)[..., None] \
            + self.gradient[2] * (v / img_h)[..., None]
        pts = np.stack([u / 400.0, v / 400.0, np.zeros_like(u)], -1).reshape(-1, 3)
        tex = self.texture(pts).reshape(h, w, 3)
        out = gradient * (1.0 - self.texture_weight) + tex * self.texture_weight
        if factor > 1:
            out = cv2.resize(out, (w * factor, h * factor), interpolation=cv2.INTER_LINEAR)[:height, :width]
        return np.ascontiguousarray(out)


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """2 x 3 affine of outer(inner(p))."""
    a = np.vstack([outer, [0, 0, 1]]) @ np.vstack([inner, [0, 0, 1]])
    return a[:2]


def _pixel_grid(affine: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    cols, rows = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    u = affine[0, 0] * cols + affine[0, 1] * rows + affine[0, 2]
    v = affine[1, 0] * cols + affine[1, 1] * rows + affine[1, 2]
    return u, v


def random_background(rng: np.random.Generator, split: Split, size: tuple[int, int],
                      cfg: SyntheticAppearanceConfig) -> Background:
    """A photo (random crop, scale, flip of a split photo) or a procedural background."""
    width, height = size
    photo, affine = None, np.zeros((2, 3))
    sources = photo_sources(split, cfg.opencv_doc_photos)
    if sources and rng.random() < cfg.photo_background_prob:
        photo = load_photo(sources[int(rng.integers(len(sources)))])
        if photo is not None:
            affine = _photo_placement(rng, photo.shape[1], photo.shape[0], width, height)
    noise = rng.normal(0, rng.uniform(0.02, 0.15), (int(rng.integers(2, 8)), int(rng.integers(2, 8)), 3))
    n_rects = int(rng.integers(0, 4))
    rects = np.concatenate([np.sort(rng.random((n_rects, 2, 2)), axis=1).transpose(0, 2, 1)
                            .reshape(n_rects, 4)[:, [0, 2, 1, 3]],
                            np.stack([random_colour(rng) for _ in range(n_rects)]).reshape(n_rects, 3)],
                           axis=1) if n_rects else np.zeros((0, 7))
    return Background(photo=photo, photo_affine=affine,
                      gradient=np.stack([random_colour(rng), rng.normal(0, 0.2, 3), rng.normal(0, 0.2, 3)]),
                      noise_grid=noise.astype(np.float32),
                      texture=make_texture(texture_id(rng, split), texture_prob=1.0, scale=0.5),
                      texture_weight=float(rng.uniform(0.0, 0.6)), rects=rects, size=(width, height))


def _photo_placement(rng: np.random.Generator, pw: int, ph: int, width: int, height: int) -> np.ndarray:
    """2 x 3 image pixel -> photo pixel: a random sub-window of the photo fills the image."""
    zoom = rng.uniform(0.35, 1.0)  # fraction of the photo (fitting the image aspect) shown
    scale = min(pw / width, ph / height) * zoom
    x0 = rng.uniform(0, pw - scale * width)
    y0 = rng.uniform(0, ph - scale * height)
    sx = -scale if rng.random() < 0.5 else scale
    if sx < 0:
        x0 += scale * width
    return np.array([[sx, 0.0, x0], [0.0, scale, y0]])


# --- camera artefacts ------------------------------------------------------------------------
def finish_image(image: np.ndarray, rng: np.random.Generator, cfg: SyntheticAppearanceConfig,
                 lowres_side: Optional[float] = None) -> np.ndarray:
    """Float H x W x 3 render -> uint8 RGB with resolution loss, blur, colour jitter, noise, JPEG.

    ``lowres_side``: if given and smaller than the image side, the image is resampled through
    that size (area down, bilinear up), as when a small person is cropped and upsampled.
    """
    import cv2

    img = image.astype(np.float32)
    h, w = img.shape[:2]
    if cfg.emulate_resolution and lowres_side is not None and lowres_side < min(h, w):
        side = max(int(round(lowres_side)), 4)
        small = cv2.resize(img, (max(1, side * w // h), side), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < cfg.blur_prob:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(*cfg.blur_sigma_px)))
    j = cfg.colour_jitter
    gain = (1.0 + rng.normal(0, j, 3)) * (1.0 + rng.normal(0, j))
    img = (img - 0.5) * (1.0 + rng.normal(0, j)) + 0.5  # contrast
    img = img * gain.astype(np.float32) + np.float32(rng.normal(0, j * 0.5))
    img = img + np.float32(rng.uniform(*cfg.noise_std)) * rng.standard_normal(img.shape, dtype=np.float32)
    out = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < cfg.jpeg_prob:
        quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(out)
