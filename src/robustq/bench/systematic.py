"""Systematic noise (after ImageNet-S): the same images through other deployment pipelines.

14 variants, one interface (``systematic_images(encoded, variant)``):
- 3 decoders of the same encoded files: Pillow, OpenCV, and simplejpeg with its fast DCT and fast
  chroma upsampling (the speed settings of fast data loaders). On libjpeg-turbo builds Pillow and
  OpenCV often decode bit-identically; the fast path does not.
- 11 resize methods (Pillow nearest/bilinear/bicubic/box/hamming/lanczos; OpenCV
  nearest/linear/area/cubic/lanczos4), applied to the Pillow-decoded image. Protocol for small
  (e.g. 32-pixel) images: resize to ``size`` (default 24) and back to the original size with the
  same method, as a pipeline storing images at a lower resolution would; for large images, resize
  the short side to 256 and center-crop 224 with that method (``size=None``).

Inputs are encoded files (``read_encoded`` for ImageFolder data; other data sets are encoded once
as JPEG, quality 95, by ``encode_images``); outputs are uint8 ``(N, H, W, C)``.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image

from robustq.utils.errors import RobustqError
from robustq.utils.registry import Registry

DECODER_REGISTRY: Registry[Callable[[bytes, bool], np.ndarray]] = Registry("decoder")


@DECODER_REGISTRY.register("pillow")
def _decode_pillow(data: bytes, gray: bool) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("L" if gray else "RGB"))


@DECODER_REGISTRY.register("opencv")
def _decode_opencv(data: bytes, gray: bool) -> np.ndarray:
    arr = cv2.imdecode(np.frombuffer(data, np.uint8),
                       cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if arr is None:
        raise RobustqError("OpenCV could not decode an image")
    return arr if gray else cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


@DECODER_REGISTRY.register("simplejpeg-fast")
def _decode_simplejpeg_fast(data: bytes, gray: bool) -> np.ndarray:
    import simplejpeg

    if not simplejpeg.is_jpeg(data):
        raise RobustqError("simplejpeg decodes JPEG only")
    return simplejpeg.decode_jpeg(data, colorspace="GRAY" if gray else "RGB", fastdct=True,
                                  fastupsample=True)


DECODERS = DECODER_REGISTRY.names()
PIL_RESIZE = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
              "box": Image.BOX, "hamming": Image.HAMMING, "lanczos": Image.LANCZOS}
CV_RESIZE = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA,
             "cubic": cv2.INTER_CUBIC, "lanczos4": cv2.INTER_LANCZOS4}
VARIANTS = ([f"decode-{d}" for d in DECODERS] + [f"resize-pil-{m}" for m in PIL_RESIZE]
            + [f"resize-cv2-{m}" for m in CV_RESIZE])


def decode(data: bytes, decoder: str, channels: int) -> np.ndarray:
    """Decode one encoded image to uint8 (H, W, channels) with ``decoder``."""
    arr = DECODER_REGISTRY.get(decoder)(data, channels == 1)
    return arr.reshape(arr.shape[0], arr.shape[1], channels)


def _resize(img: np.ndarray, lib: str, method: str, wh: tuple[int, int]) -> np.ndarray:
    c = img.shape[2]
    if lib == "pil":
        pil = Image.fromarray(img[..., 0] if c == 1 else img)
        out = np.asarray(pil.resize(wh, PIL_RESIZE[method]))
    else:
        out = cv2.resize(img, wh, interpolation=CV_RESIZE[method])
    return out.reshape(wh[1], wh[0], c)


def resize_variant(img: np.ndarray, lib: str, method: str, size: int | None = 24) -> np.ndarray:
    """Resize by the protocol above with one library and method."""
    h, w = img.shape[:2]
    if size is not None:
        small = (max(1, round(w * size / max(h, w))), max(1, round(h * size / max(h, w))))
        return _resize(_resize(img, lib, method, small), lib, method, (w, h))
    scale = 256 / min(h, w)
    big = _resize(img, lib, method, (round(w * scale), round(h * scale)))
    top, left = (big.shape[0] - 224) // 2, (big.shape[1] - 224) // 2
    return big[top:top + 224, left:left + 224]


def encode_images(images: np.ndarray, quality: int = 95) -> list[bytes]:
    """JPEG-encode uint8 images (N, H, W, C) with Pillow, for data sets stored as raw pixels."""
    out = []
    for img in images:
        buf = io.BytesIO()
        Image.fromarray(img[..., 0] if img.shape[2] == 1 else img).save(buf, "JPEG",
                                                                        quality=quality)
        out.append(buf.getvalue())
    return out


def systematic_images(encoded: list[bytes], variant: str, channels: int = 3,
                      size: int | None = 24) -> np.ndarray:
    """The images of ``encoded`` through the pipeline ``variant`` (one of ``VARIANTS``)."""
    if variant not in VARIANTS:
        raise RobustqError(f"unknown systematic variant {variant!r}; known: {', '.join(VARIANTS)}")
    kind, rest = variant.split("-", 1)
    if kind == "decode":
        return np.stack([decode(b, rest, channels) for b in encoded])
    lib, method = rest.split("-", 1)
    return np.stack([resize_variant(decode(b, "pillow", channels), lib, method, size)
                     for b in encoded])
