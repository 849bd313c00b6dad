import itertools

import numpy as np
import pytest

from robustq.bench.systematic import VARIANTS, encode_images, systematic_images
from robustq.utils.errors import RobustqError
from tests.bench.test_corruptions import smooth_images


def test_fourteen_variants():
    assert len(VARIANTS) == 14 and len(set(VARIANTS)) == 14


def test_variants_keep_shape_and_differ():
    x = smooth_images(4)
    enc = encode_images(x, quality=90)
    out = {v: systematic_images(enc, v) for v in VARIANTS}
    assert all(o.shape == x.shape and o.dtype == np.uint8 for o in out.values())
    resize = [v for v in VARIANTS if v.startswith("resize")]
    for a, b in itertools.combinations(resize, 2):
        assert not np.array_equal(out[a], out[b]), (a, b)
    for v in resize + ["decode-simplejpeg-fast"]:
        assert not np.array_equal(out[v], out["decode-pillow"]), v
    # the reference decode is faithful to the pixels (JPEG loss only)
    assert np.abs(out["decode-pillow"].astype(float) - x).mean() < 6
    # Pillow and OpenCV may decode bit-identically (both libjpeg-turbo); they must be close
    assert np.abs(out["decode-opencv"].astype(float) - out["decode-pillow"]).mean() < 2


def test_gray_and_large_images():
    gray = smooth_images(2)[..., :1]
    assert systematic_images(encode_images(gray), "resize-cv2-area", channels=1).shape == gray.shape
    big = np.repeat(np.repeat(smooth_images(1), 9, axis=1), 9, axis=2)     # 288 x 288
    assert systematic_images(encode_images(big), "resize-pil-bicubic", size=None).shape == \
        (1, 224, 224, 3)


def test_unknown_variant():
    with pytest.raises(RobustqError, match="unknown systematic variant"):
        systematic_images([], "resize-pil-magic")
