import numpy as np
import pytest
from imagecorruptions import corrupt as library_corrupt

from robustq.bench.corruptions import ALL, BENCHMARK, CIFAR10_C, apply_corruption, corrupt
from robustq.utils.errors import RobustqError


def smooth_images(n=3, size=32, seed=0):
    """Natural-ish images: smooth gradients, a patch, and fine texture (blur needs detail)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        a, b, c = rng.random(3)
        img = np.stack([a * xx + (1 - a) * yy, b * yy, c * (1 - xx)], axis=2)
        img[size // 4: size // 2, size // 4: 3 * size // 4] = rng.random(3)
        img += 0.1 * rng.random((size, size, 1)) * ((xx * size + yy * size) % 3 == 0)[..., None]
        out.append(np.clip(img, 0, 1))
    return (np.stack(out) * 200 + 20).astype(np.uint8)


def test_nineteen_corruptions_with_a_32_pixel_table():
    assert len(BENCHMARK) == 15 and len(ALL) == 19
    assert set(CIFAR10_C) == set(ALL) and all(len(v) == 5 for v in CIFAR10_C.values())
    assert CIFAR10_C["gaussian_noise"] == [0.04, 0.06, 0.08, 0.09, 0.10]


@pytest.mark.parametrize("name", ALL)
def test_deterministic_and_keeps_dtype_shape_range(name):
    x = smooth_images()
    a = corrupt(x, name, 3, seed=1)
    assert a.dtype == np.uint8 and a.shape == x.shape
    np.testing.assert_array_equal(a, corrupt(x, name, 3, seed=1))
    # per-image seeds: the same image gets the same corruption in any batch
    np.testing.assert_array_equal(a[1:], corrupt(x[1:], name, 3, seed=1, indices=[1, 2]))
    gray = corrupt(x[..., :1], name, 2, seed=1)
    assert gray.shape == x[..., :1].shape and gray.dtype == np.uint8


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise",
                                  "speckle_noise", "defocus_blur", "gaussian_blur", "zoom_blur",
                                  "contrast", "brightness", "pixelate", "fog", "glass_blur"])
def test_stronger_with_severity(name):
    x = smooth_images(6)
    dist = [np.abs(corrupt(x, name, s, seed=2).astype(float) - x).mean() for s in range(1, 6)]
    assert dist[0] > 0 and dist[-1] > dist[0]
    if name != "pixelate":      # resampling 32 -> 30/28/27 px aliases differently: not monotone
        assert all(b >= a * 0.9 for a, b in zip(dist, dist[1:], strict=False)), dist


def test_seeds_matter_for_random_corruptions():
    x = smooth_images()
    for name in ("gaussian_noise", "impulse_noise", "glass_blur", "frost", "snow"):
        assert not np.array_equal(corrupt(x, name, 3, seed=1), corrupt(x, name, 3, seed=2)), name


# ImageNet-C severity-1 constants, as hard-coded in imagecorruptions
IMAGENET_C_S1 = {"gaussian_noise": 0.08, "shot_noise": 60, "impulse_noise": 0.03,
                 "speckle_noise": 0.15, "gaussian_blur": 1, "glass_blur": (0.7, 1, 2),
                 "defocus_blur": (3, 0.1), "motion_blur": (10, 3), "zoom_blur": (1, 1.11, 0.01),
                 "fog": (1.5, 2), "snow": (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
                 "spatter": (0.65, 0.3, 4, 0.69, 0.6, 0), "contrast": 0.4, "brightness": 0.1,
                 "saturate": (0.3, 0), "jpeg_compression": 25}


@pytest.mark.parametrize("name", sorted(IMAGENET_C_S1))
def test_parameterized_versions_reproduce_the_library(name):
    img = smooth_images(1, size=64)[0]
    np.random.seed(5)
    ref = library_corrupt(img, 1, name, **({"seed": 5} if name in ("impulse_noise",
                                                                    "glass_blur") else {}))
    ours = apply_corruption(img, name, IMAGENET_C_S1[name], 5)
    assert np.abs(ref.astype(int) - ours).max() <= 1


def test_224_profile_uses_the_library():
    x = smooth_images(2, size=48)
    a = corrupt(x, "gaussian_noise", 1, seed=3, profile="224")
    b = corrupt(x, "gaussian_noise", 1, seed=3, profile="32")
    # ImageNet-C's sigma 0.08 is twice CIFAR-10-C's 0.04
    assert np.abs(a.astype(float) - x).mean() > 1.5 * np.abs(b.astype(float) - x).mean()


def test_bad_requests_are_refused():
    x = smooth_images(1)
    with pytest.raises(RobustqError, match="unknown corruption"):
        corrupt(x, "rain", 1)
    with pytest.raises(RobustqError, match="severity"):
        corrupt(x, "fog", 6)
    with pytest.raises(RobustqError, match="uint8"):
        corrupt(x.astype(np.float32), "fog", 1)
    with pytest.raises(RobustqError, match="at least 32"):
        corrupt(smooth_images(1, size=16), "fog", 1, profile="224")
