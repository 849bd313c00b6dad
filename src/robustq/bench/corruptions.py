"""Natural corruptions (Hendrycks & Dietterich 2019): 15 benchmark + 4 held-out, 5 severities each.

Two parameter profiles, one interface (``corrupt(images, name, severity, seed, profile)``):

- ``"224"``: ImageNet-C's constants, computed by ``imagecorruptions-imaug`` (``corrupt``), which
  implements all 19 with those constants only.
- ``"32"``: CIFAR-10-C's constants (e.g. gaussian noise sigma .04-.10 instead of .08-.38). The
  library hard-codes the ImageNet constants inside each function, so the 32-pixel table lives here
  (``CIFAR10_C``) with small parameterized versions of the corruptions built on the library's own
  helpers (disk kernel, plasma fractal, clipped zoom, motion blur, glass-blur shuffle, frost
  pictures). With ImageNet constants they reproduce the library's output (tested). Where
  CIFAR-10-C's algorithm differs from the library's (pixelate upsamples with BOX; elastic adds a
  random affine and has its own (alpha, sigma, affine) triples) we follow CIFAR-10-C.

Images are uint8 ``(N, H, W, C)`` with C = 1 or 3; outputs keep dtype, shape and the [0, 255]
range. Each image gets its own seed from (seed, image index, corruption, severity), so a corrupted
set is reproducible image by image and independent of how it is batched.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from io import BytesIO

import cv2
import numpy as np
import skimage as sk
from imagecorruptions import corrupt as library_corrupt
from imagecorruptions import corruptions as lib
from PIL import Image
from scipy.ndimage import map_coordinates
from skimage.filters import gaussian

from robustq.utils.errors import RobustqError
from robustq.utils.registry import Registry

BENCHMARK = ["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
             "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
             "elastic_transform", "pixelate", "jpeg_compression"]
HELD_OUT = ["speckle_noise", "gaussian_blur", "spatter", "saturate"]
ALL = BENCHMARK + HELD_OUT
SEVERITIES = (1, 2, 3, 4, 5)
PROFILES = ("32", "224")

# CIFAR-10-C (Hendrycks & Dietterich, make_cifar_c.py): one entry per severity 1..5
CIFAR10_C: dict[str, list] = {
    "gaussian_noise": [0.04, 0.06, 0.08, 0.09, 0.10],
    "shot_noise": [500, 250, 100, 75, 50],
    "impulse_noise": [0.01, 0.02, 0.03, 0.05, 0.07],
    "speckle_noise": [0.06, 0.1, 0.12, 0.16, 0.2],
    "gaussian_blur": [0.4, 0.6, 0.7, 0.8, 1.0],
    "glass_blur": [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],
    "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
    "motion_blur": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],
    "zoom_blur": [(1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01),
                  (1, 1.26, 0.01)],
    "fog": [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],
    "frost": [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],
    "snow": [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
             (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
             (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)],
    "spatter": [(0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0),
                (0.65, 0.3, 1, 0.69, 0.5, 0), (0.65, 0.1, 0.7, 0.69, 0.6, 1),
                (0.65, 0.1, 0.5, 0.68, 0.6, 1)],
    "contrast": [0.75, 0.5, 0.4, 0.3, 0.15],
    "brightness": [0.05, 0.1, 0.15, 0.2, 0.3],
    "saturate": [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)],
    "jpeg_compression": [80, 65, 58, 50, 40],
    "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],
    # (alpha, sigma, affine) as fractions of the image size
    "elastic_transform": [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05),
                          (0.1, 0.03, 0.03)],
}

# Each function maps (float RGB image in [0, 1], H x W x 3; parameters; seed) to [0, 1].
CORRUPTION_REGISTRY: Registry[Callable[[np.ndarray, object, int], np.ndarray]] = \
    Registry("corruption")


def _corruption(fn: Callable) -> Callable:
    return CORRUPTION_REGISTRY.register(fn.__name__.lstrip("_"))(fn)


@_corruption
def _gaussian_noise(x, c, seed):
    return x + np.random.normal(size=x.shape, scale=c)


@_corruption
def _shot_noise(x, c, seed):
    return np.random.poisson(x * c) / float(c)


@_corruption
def _impulse_noise(x, c, seed):
    return sk.util.random_noise(x, mode="s&p", rng=seed, amount=c)


@_corruption
def _speckle_noise(x, c, seed):
    return x + x * np.random.normal(size=x.shape, scale=c)


@_corruption
def _gaussian_blur(x, c, seed):
    return gaussian(x, sigma=c, channel_axis=-1)


@_corruption
def _glass_blur(x, c, seed):
    x = np.uint8(gaussian(x, sigma=c[0], channel_axis=-1) * 255)
    x = lib._shuffle_pixels_njit_glass_blur(x.shape[0], x.shape[1], x, c, seed)
    return gaussian(x / 255.0, sigma=c[0], channel_axis=-1)


@_corruption
def _defocus_blur(x, c, seed):
    kernel = lib.disk(radius=c[0], alias_blur=c[1])
    return np.stack([cv2.filter2D(x[:, :, d], -1, kernel) for d in range(3)], axis=2)


@_corruption
def _motion_blur(x, c, seed):
    angle = np.random.uniform(-45, 45)
    return lib._motion_blur(x * 255, radius=c[0], sigma=c[1], angle=angle) / 255.0


@_corruption
def _zoom_blur(x, c, seed):
    x = x.astype(np.float32)
    factors = np.arange(*c)
    out = np.zeros_like(x)
    for z in factors:
        out += lib.clipped_zoom(x, z)[: x.shape[0], : x.shape[1]]
    return (x + out) / (len(factors) + 1)


@_corruption
def _fog(x, c, seed):
    size = lib.next_power_of_2(max(x.shape[:2]))
    max_val = x.max()
    x = x + c[0] * lib.plasma_fractal(mapsize=size, wibbledecay=c[1])[: x.shape[0], : x.shape[1],
                                                                      None]
    return x * max_val / (max_val + c[0])


def _frost_picture(index: int) -> np.ndarray:
    name = ["frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg"][index]
    ref = importlib.resources.files("imagecorruptions") / "frost" / name
    with importlib.resources.as_file(ref) as path:
        return cv2.imread(str(path))


@_corruption
def _frost(x, c, seed):
    # CIFAR-10-C: the frost pictures shrunk to 0.2 of their size, then a random crop
    frost = _frost_picture(np.random.randint(6))
    scale = max(0.2, 1.1 * max(x.shape[0] / frost.shape[0], x.shape[1] / frost.shape[1]))
    frost = cv2.resize(frost, (0, 0), fx=scale, fy=scale)
    i = np.random.randint(0, frost.shape[0] - x.shape[0] + 1)
    j = np.random.randint(0, frost.shape[1] - x.shape[1] + 1)
    frost = frost[i: i + x.shape[0], j: j + x.shape[1]][..., [2, 1, 0]] / 255.0
    return c[0] * x + c[1] * frost


@_corruption
def _snow(x, c, seed):
    x = x.astype(np.float32)
    layer = np.random.normal(size=x.shape[:2], loc=c[0], scale=c[1])
    layer = lib.clipped_zoom(layer[..., None], c[2])
    layer[layer < c[3]] = 0
    layer = np.clip(layer.squeeze(-1), 0, 1)
    layer = lib._motion_blur(layer, radius=c[4], sigma=c[5], angle=np.random.uniform(-135, -45))
    layer = (np.round(layer * 255).astype(np.uint8) / 255.0)[: x.shape[0], : x.shape[1], None]
    gray = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[..., None]
    x = c[6] * x + (1 - c[6]) * np.maximum(x, gray * 1.5 + 0.5)
    return x + layer + np.rot90(layer, k=2)


@_corruption
def _spatter(x, c, seed):
    x = x.astype(np.float32)
    liquid = gaussian(np.random.normal(size=x.shape[:2], loc=c[0], scale=c[1]), sigma=c[2])
    liquid[liquid < c[3]] = 0
    if c[5] == 0:       # water: pale turquoise, shaped by the liquid layer's edges
        liquid = (liquid * 255).astype(np.uint8)
        dist = cv2.distanceTransform(255 - cv2.Canny(liquid, 50, 150), cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.equalizeHist(cv2.blur(dist, (3, 3)).astype(np.uint8))
        dist = cv2.filter2D(dist, cv2.CV_8U, np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]))
        dist = cv2.blur(dist, (3, 3)).astype(np.float32)
        m = cv2.cvtColor(liquid * dist, cv2.COLOR_GRAY2BGRA)
        m /= np.max(m, axis=(0, 1))
        m *= c[4]
        color = np.concatenate([v / 255.0 * np.ones_like(m[..., :1]) for v in (175, 238, 238)], 2)
        color = cv2.cvtColor(color, cv2.COLOR_BGR2BGRA)
        x = cv2.cvtColor(x, cv2.COLOR_BGR2BGRA)
        return cv2.cvtColor(np.clip(x + m * color, 0, 1), cv2.COLOR_BGRA2BGR)
    m = gaussian(np.where(liquid > c[3], 1, 0).astype(np.float32), sigma=c[4])
    m[m < 0.8] = 0      # mud: brown blobs
    color = np.array([63, 42, 20], np.float32) / 255.0 * m[..., None]
    return x * (1 - m[..., None]) + color


@_corruption
def _contrast(x, c, seed):
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return (x - means) * c + means


@_corruption
def _brightness(x, c, seed):
    x = sk.color.rgb2hsv(x)
    x[:, :, 2] = np.clip(x[:, :, 2] + c, 0, 1)
    return sk.color.hsv2rgb(x)


@_corruption
def _saturate(x, c, seed):
    x = sk.color.rgb2hsv(x)
    x[:, :, 1] = np.clip(x[:, :, 1] * c[0] + c[1], 0, 1)
    return sk.color.hsv2rgb(x)


def _to_pil(x: np.ndarray) -> Image.Image:
    return Image.fromarray(np.uint8(np.clip(x, 0, 1) * 255))


@_corruption
def _jpeg_compression(x, c, seed):
    buf = BytesIO()
    _to_pil(x).save(buf, "JPEG", quality=c)
    return np.asarray(Image.open(buf)) / 255.0


@_corruption
def _pixelate(x, c, seed):
    h, w = x.shape[:2]
    img = _to_pil(x).resize((int(w * c), int(h * c)), Image.BOX).resize((w, h), Image.BOX)
    return np.asarray(img) / 255.0


@_corruption
def _elastic_transform(x, c, seed):
    x = x.astype(np.float32)
    h, w = x.shape[:2]
    alpha, sigma, affine = (v * min(h, w) for v in c)
    center, size = np.float32([h, w]) // 2, min(h, w) // 3
    pts1 = np.float32([center + size, [center[0] + size, center[1] - size], center - size])
    pts2 = pts1 + np.random.uniform(-affine, affine, size=pts1.shape).astype(np.float32)
    x = cv2.warpAffine(x, cv2.getAffineTransform(pts1, pts2), (w, h),
                       borderMode=cv2.BORDER_REFLECT_101)
    dx, dy = ((gaussian(np.random.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3)
               * alpha).astype(np.float32)[..., None] for _ in range(2))
    xx, yy, zz = np.meshgrid(np.arange(w), np.arange(h), np.arange(3))
    idx = (yy + dy).reshape(-1, 1), (xx + dx).reshape(-1, 1), zz.reshape(-1, 1)
    return map_coordinates(x, idx, order=1, mode="reflect").reshape(x.shape)


def image_seed(seed: int, index: int, name: str, severity: int) -> int:
    """The seed of one (image, corruption, severity): independent of batching and order."""
    return int(np.random.SeedSequence([seed, index, ALL.index(name), severity]).generate_state(1)[0])


def apply_corruption(img: np.ndarray, name: str, params, seed: int) -> np.ndarray:
    """Corrupt one uint8 RGB image (H, W, 3) with explicit parameters; returns uint8."""
    state = np.random.get_state()
    np.random.seed(seed)        # the library's helpers draw from NumPy's global generator
    try:
        out = CORRUPTION_REGISTRY.get(name)(img / 255.0, params, seed)
    finally:
        np.random.set_state(state)
    return np.uint8(np.clip(out, 0, 1) * 255)


def _check(name: str, severity: int, profile: str) -> None:
    if name not in ALL:
        raise RobustqError(f"unknown corruption {name!r}; known: {', '.join(ALL)}")
    if isinstance(severity, bool) or not isinstance(severity, int | np.integer) \
            or severity not in SEVERITIES:
        raise RobustqError(f"severity must be an integer in 1..5, got {severity!r}")
    if profile not in PROFILES:
        raise RobustqError(f"profile must be one of {PROFILES}, got {profile!r}")


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0, profile: str = "32",
            indices: np.ndarray | None = None) -> np.ndarray:
    """Corrupt uint8 images ``(N, H, W, C)`` (C = 1 or 3); ``indices`` are the images' dataset
    indices (they pick each image's seed; default 0..N-1). Returns uint8 of the same shape."""
    _check(name, severity, profile)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise RobustqError(f"expected uint8 images (N, H, W, 1 or 3), got {images.dtype} "
                           f"{images.shape}")
    if profile == "224" and min(images.shape[1:3]) < 32:
        raise RobustqError("the 224 profile (imagecorruptions) needs images of at least 32 pixels")
    indices = np.arange(len(images)) if indices is None else np.asarray(indices)
    out = np.empty_like(images)
    for k, (img, i) in enumerate(zip(images, indices, strict=True)):
        rgb = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img
        s = image_seed(seed, int(i), name, severity)
        if profile == "32":
            res = apply_corruption(rgb, name, CIFAR10_C[name][severity - 1], s)
        else:
            state = np.random.get_state()
            np.random.seed(s)
            kwargs = {"seed": s} if name in ("impulse_noise", "glass_blur") else {}
            try:
                res = library_corrupt(rgb, severity=severity, corruption_name=name, **kwargs)
            finally:
                np.random.set_state(state)
        out[k] = res.mean(axis=2, keepdims=True).round().astype(np.uint8) if img.shape[2] == 1 \
            else res
    return out
