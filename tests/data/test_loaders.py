import gzip
import pickle
import zipfile

import numpy as np
import pytest

from robustq.data import detect_format, load_dataset
from robustq.utils.errors import RobustqError
from tests.conftest import (
    CIFAR_CLASSES,
    write_cifar_binary,
    write_cifar_python,
    write_image_folder,
    write_mnist,
)


def test_cifar_python_layout(tmp_path):
    arrays = write_cifar_python(tmp_path / "cifar-10-batches-py")
    assert detect_format(tmp_path)[0] == "cifar10-python"
    train = load_dataset(tmp_path, "train")
    test = load_dataset(tmp_path / "cifar-10-batches-py", "test")
    assert train.images.shape == (20, 32, 32, 3) and train.images.dtype == np.uint8
    assert train.classes == tuple(CIFAR_CLASSES)
    np.testing.assert_array_equal(train.images[:4], arrays["data_batch_1"])
    np.testing.assert_array_equal(test.images, arrays["test_batch"])
    assert test.labels.tolist() == [5, 6, 7, 8]


def test_cifar_binary_layout(tmp_path):
    arrays = write_cifar_binary(tmp_path / "cifar-10-batches-bin")
    assert detect_format(tmp_path)[0] == "cifar10-binary"
    train = load_dataset(tmp_path, "train")
    test = load_dataset(tmp_path, "test")
    assert train.images.shape == (20, 32, 32, 3)
    np.testing.assert_array_equal(train.images[4:8], arrays["data_batch_2"])
    np.testing.assert_array_equal(test.images, arrays["test_batch"])
    assert test.classes == tuple(CIFAR_CLASSES)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz=gz)
    assert detect_format(tmp_path)[0] == "mnist-idx"
    test = load_dataset(tmp_path, "test")
    assert test.images.shape == (12, 28, 28, 1)
    np.testing.assert_array_equal(test.images[..., 0], arrays["t10k"])
    assert test.labels.tolist() == [i % 10 for i in range(12)]


def test_image_folder_dir_and_zip_agree_and_cache(tmp_path):
    write_image_folder(tmp_path / "tree")
    from_dir = load_dataset(tmp_path / "tree", "train")
    with zipfile.ZipFile(tmp_path / "tree.zip", "w") as z:   # wrapped in a top-level folder
        for p in sorted((tmp_path / "tree").rglob("*.png")):
            z.write(p, "wrapped/" + p.relative_to(tmp_path / "tree").as_posix())
    from_zip = load_dataset(tmp_path / "tree.zip", "train")
    cached = load_dataset(tmp_path / "tree.zip", "train")
    assert from_dir.classes == from_zip.classes == ("cat", "dog")
    assert from_dir.images.shape == (6, 32, 32, 3)
    np.testing.assert_array_equal(from_dir.images, from_zip.images)
    np.testing.assert_array_equal(cached.images, from_zip.images)
    np.testing.assert_array_equal(from_zip.labels, [0, 0, 0, 1, 1, 1])


def test_jpeg_folder_decodes(tmp_path):
    write_image_folder(tmp_path / "t", fmt="jpg")
    ds = load_dataset(tmp_path / "t", "test")
    assert ds.images.dtype == np.uint8 and ds.images.shape == (6, 32, 32, 3)


def test_embedded_default_is_stratified_real_mnist():
    train, test = load_dataset("embedded", "train"), load_dataset("embedded", "test")
    assert train.images.shape[1:] == (28, 28, 1) and len(test) == 1000
    assert np.bincount(test.labels).tolist() == [100] * 10
    assert len(train) >= 2000 and len(set(np.bincount(train.labels))) == 1
    assert 0.05 < train.images.mean() / 255 < 0.25     # real digits: mostly dark background


def test_embedded_cifar10_is_stratified_real_cifar():
    from robustq.data.embedded import CIFAR10_CLASSES

    train, test = load_dataset("embedded-cifar10", "train"), load_dataset("embedded-cifar10",
                                                                           "test")
    assert train.images.shape == (1200, 32, 32, 3) and test.images.shape == (300, 32, 32, 3)
    assert np.bincount(train.labels).tolist() == [120] * 10
    assert np.bincount(test.labels).tolist() == [30] * 10
    assert train.classes == CIFAR10_CLASSES and train.source == "embedded:cifar10"
    # real photographs: CIFAR-10's channel means (0.49, 0.48, 0.45) within sampling error
    np.testing.assert_allclose(train.images.reshape(-1, 3).mean(0) / 255,
                               [0.4913, 0.4821, 0.4465], atol=0.02)
    assert load_dataset("embedded-mnist", "test").source == "embedded:mnist"


def test_unknown_embedded_name_lists_the_packaged_ones():
    from robustq.data.embedded import load_embedded
    from robustq.utils.errors import RobustqError

    with pytest.raises(RobustqError, match="embedded-cifar10"):
        load_embedded("test", "embedded-imagenet")


def test_tensors_are_unit_range_nchw(tiny_rgb_dataset):
    x, y = tiny_rgb_dataset.tensors()
    assert x.shape == (64, 3, 8, 8) and 0 <= x.min() and x.max() <= 1 and y.dtype.is_signed


# ----------------------------------------------------------------- bad input, clear errors


class Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch pwned",))


def test_malicious_pickle_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "cifar-10-batches-py"
    write_cifar_python(root)
    (root / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2))
    with pytest.raises(RobustqError, match=r"test_batch: refused to unpickle (posix|os)\.system"):
        load_dataset(root, "test")
    assert not (tmp_path / "pwned").exists()


def test_missing_split(tmp_path):
    write_image_folder(tmp_path / "t")
    with pytest.raises(RobustqError, match="missing split 'valid'.*splits found: test, train"):
        load_dataset(tmp_path / "t", "valid")
    root = tmp_path / "cifar-10-batches-py"
    write_cifar_python(root)
    (root / "data_batch_3").unlink()
    with pytest.raises(RobustqError, match="split 'train' needs data_batch_3"):
        load_dataset(root, "train")
    write_mnist(tmp_path / "m", gz=True)
    (tmp_path / "m" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(RobustqError, match="t10k-labels-idx1-ubyte .*missing"):
        load_dataset(tmp_path / "m", "test")


def test_wrong_idx_magic(tmp_path):
    write_mnist(tmp_path, gz=False)
    p = tmp_path / "t10k-images-idx3-ubyte"
    raw = bytearray(p.read_bytes())
    raw[3] = 0x01
    p.write_bytes(bytes(raw))
    with pytest.raises(RobustqError, match=r"t10k-images-idx3-ubyte: wrong IDX magic 0x00000801, "
                                           r"expected 0x00000803"):
        load_dataset(tmp_path, "test")


def test_truncated_idx_and_binary_records(tmp_path):
    write_mnist(tmp_path / "m", gz=True)
    p = tmp_path / "m" / "train-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes())[:-5]))
    with pytest.raises(RobustqError, match="train-images-idx3-ubyte.gz: truncated record"):
        load_dataset(tmp_path / "m", "train")
    write_cifar_binary(tmp_path / "b")
    p = tmp_path / "b" / "test_batch.bin"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(RobustqError, match="test_batch.bin: truncated record"):
        load_dataset(tmp_path / "b", "test")


def test_unreadable_image(tmp_path):
    write_image_folder(tmp_path / "t")
    (tmp_path / "t" / "train" / "dog" / "0001.png").write_bytes(b"not a png")
    with pytest.raises(RobustqError, match=r"dog/0001.png: unreadable image"):
        load_dataset(tmp_path / "t", "train")


def test_class_folders_differ_between_splits(tmp_path):
    write_image_folder(tmp_path / "t")
    (tmp_path / "t" / "test" / "dog").rename(tmp_path / "t" / "test" / "wolf")
    with pytest.raises(RobustqError, match="class folders differ between splits"):
        load_dataset(tmp_path / "t", "train")


def test_missing_source_and_bad_zip(tmp_path):
    with pytest.raises(RobustqError, match="no such file or directory"):
        load_dataset(tmp_path / "nope", "train")
    (tmp_path / "bad.zip").write_bytes(b"PK garbage")
    with pytest.raises(RobustqError, match="bad.zip: not a readable zip"):
        load_dataset(tmp_path / "bad.zip", "train")


def test_spread_covers_every_class_of_sorted_data(tiny_rgb_dataset):
    sorted_ds = tiny_rgb_dataset.subset(np.argsort(tiny_rgb_dataset.labels, kind="stable"))
    part = sorted_ds.spread(10)
    assert len(part) == 10 and set(part.labels.tolist()) == {0, 1}
    assert sorted_ds.spread(1000) is sorted_ds and len(sorted_ds.spread(0)) == 0


# ------------------------------------------------------------- reliability of the decode cache
def test_imagefolder_cache_sees_an_edited_image(tmp_path):
    from PIL import Image

    from robustq.data.imagefolder import load_image_folder

    write_image_folder(tmp_path / "d", per_class=2)
    first = load_image_folder(tmp_path / "d", "test")
    target = sorted((tmp_path / "d" / "test" / "cat").iterdir())[0]
    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(target)
    again = load_image_folder(tmp_path / "d", "test")
    assert not np.array_equal(first.images[0], again.images[0])
    assert (again.images[0] == 7).all()


def test_damaged_cache_is_decoded_again_with_a_warning(tmp_path):
    from robustq.data.imagefolder import load_image_folder
    from robustq.utils.errors import RobustqWarning

    write_image_folder(tmp_path / "d", per_class=2)
    cache = tmp_path / "cache"
    first = load_image_folder(tmp_path / "d", "test", cache_dir=cache)
    (npz,) = (cache / "imagefolder").glob("*.npz")
    npz.write_bytes(npz.read_bytes()[:100])
    with pytest.warns(RobustqWarning, match="damaged decode cache"):
        again = load_image_folder(tmp_path / "d", "test", cache_dir=cache)
    assert np.array_equal(first.images, again.images)


def test_unwritable_cache_only_warns(tmp_path):
    from robustq.data.imagefolder import load_image_folder
    from robustq.utils.errors import RobustqWarning

    write_image_folder(tmp_path / "d", per_class=2)
    (tmp_path / "file").write_text("x")
    with pytest.warns(RobustqWarning, match="cannot write the decode cache"):
        ds = load_image_folder(tmp_path / "d", "test", cache_dir=tmp_path / "file" / "cache")
    assert len(ds) == 4


def test_unpickler_bounds_allocations_by_file_size(tmp_path):
    from robustq.data.cifar import restricted_load

    # numpy.ndarray((10**9,)) through REDUCE, and _reconstruct(ndarray, (10**9,), 'b'): a
    # few dozen bytes that would allocate a gigabyte
    calls = {"reduce": b"\x80\x02cnumpy\nndarray\nJ\x00\xca\x9a;\x85R.",
             "reconstruct": b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
                            b"J\x00\xca\x9a;\x85C\x01b\x87R."}
    for name, payload in calls.items():
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(RobustqError):
            restricted_load(tmp_path / name)
    write_cifar_python(tmp_path / "ok")        # the real layout still loads
    ds = load_dataset(tmp_path / "ok", "test")
    assert ds.images.shape == (4, 32, 32, 3)


def test_first_decode_reports_progress_to_the_default_reporter(tmp_path, monkeypatch):
    from robustq.data.imagefolder import load_image_folder
    from robustq.utils import progress

    events = progress.CountingProgress()
    monkeypatch.setattr(progress, "_default", [events])
    write_image_folder(tmp_path / "tree", per_class=3)
    load_image_folder(tmp_path / "tree", "test", cache_dir=tmp_path / "cache")
    assert events.events[0][0] == "start" and events.events[0][1].startswith("decoding")
    assert events.events[-2][2:] == (6, 6) and events.events[-1][0] == "end"
    events.events.clear()
    load_image_folder(tmp_path / "tree", "test", cache_dir=tmp_path / "cache")
    assert events.events == []                         # cached: nothing to decode
