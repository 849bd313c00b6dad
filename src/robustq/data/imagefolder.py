"""ImageFolder trees ``<root>/<split>/<class>/*.jpg|png``, as a directory or inside a .zip.

Decoding is done once: the decoded uint8 arrays are cached as ``.npz`` keyed by the source's
path, size and modification time, so later runs load in well under a second.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
import zipfile
from collections import defaultdict
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from robustq.data.dataset import ImageDataset
from robustq.utils.errors import RobustqError, RobustqWarning
from robustq.utils.io import atomic_write
from robustq.utils.progress import silent

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm"}


def default_cache_dir() -> Path:
    """``$ROBUSTQ_CACHE`` if set, else ``~/.cache/robustq``."""
    return Path(os.environ.get("ROBUSTQ_CACHE") or Path.home() / ".cache" / "robustq")


class _Tree:
    """Listing of image files as (split, class, relative name), from a directory or a zip."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.zip = zipfile.ZipFile(source) if source.suffix == ".zip" else None
        names = (
            [n for n in self.zip.namelist() if not n.endswith("/")]
            if self.zip else
            [p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()]
        )
        images = [PurePosixPath(n) for n in names if PurePosixPath(n).suffix.lower()
                  in IMAGE_SUFFIXES and not PurePosixPath(n).name.startswith(".")]
        # A zip may wrap the tree in one top-level folder (cifar10/train/...): strip it.
        self.prefix = ""
        tops = {p.parts[0] for p in images}
        if len(tops) == 1 and images and all(len(p.parts) == 4 for p in images):
            self.prefix = tops.pop() + "/"
        self.files: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for p in images:
            rel = PurePosixPath(str(p)[len(self.prefix):])
            if len(rel.parts) == 3:
                self.files[rel.parts[0]][rel.parts[1]].append(str(p))

    def read(self, name: str) -> bytes:
        return self.zip.read(name) if self.zip else (self.source / name).read_bytes()


def _cache_key(source: Path, split: str) -> str:
    """Changes whenever the decoded pixels could: a zip's path, size and mtime; for a directory,
    every file's relative path, size and mtime (an edited or added image makes a new key)."""
    h = hashlib.sha256(f"{source.resolve()}|{split}".encode())
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    for f in files:
        st = f.stat()
        h.update(f"|{f.relative_to(source) if f != source else ''}|{st.st_size}|"
                 f"{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def _read_cache(cache_file: Path, source: Path, split: str) -> ImageDataset | None:
    """The cached decode, or None (with a warning) where the file is damaged."""
    try:
        with np.load(cache_file, allow_pickle=False) as z:
            ds = ImageDataset(z["images"], z["labels"], tuple(z["classes"].tolist()),
                              str(source), split)
    except Exception as e:    # any damage (truncation, bad zip, missing arrays): decode again
        warnings.warn(f"{cache_file}: damaged decode cache ({type(e).__name__}); decoding "
                      f"{source} again", RobustqWarning, stacklevel=3)
        return None
    return ds


def _write_cache(cache_file: Path, ds: ImageDataset) -> None:
    """Store the decode; the cache is optional, so an unwritable folder only warns. Processes that
    decode the same source at once each write it whole (``shared``: none removes another's
    temporary); the last rename wins."""
    try:
        atomic_write(cache_file, lambda p: np.savez(
            p.open("wb"), images=ds.images, labels=ds.labels, classes=np.asarray(ds.classes)),
            shared=True)
    except OSError as e:
        warnings.warn(f"{cache_file.parent}: cannot write the decode cache ({e.strerror}); "
                      "going on without it (set ROBUSTQ_CACHE to a writable folder)",
                      RobustqWarning, stacklevel=3)


def _decode(tree: _Tree, name: str) -> np.ndarray:
    where = f"{tree.source}:{name}" if tree.zip else str(tree.source / name)
    try:
        with Image.open(io.BytesIO(tree.read(name))) as im:
            im = im.convert("L" if im.mode in ("L", "1", "I;16") else "RGB")
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise RobustqError(f"{where}: unreadable image ({e})") from None
    return arr[..., None] if arr.ndim == 2 else arr


def _decode_split(tree: _Tree, split: str, classes: tuple[str, ...], what: str
                  ) -> tuple[list[np.ndarray], list[int]]:
    """Every image of ``split``, class by class, reporting progress (the first decode of a
    CIFAR-10 zip takes minutes; later loads read the cache)."""
    names = [(label, n) for label, cls in enumerate(classes) for n in sorted(tree.files[split][cls])]
    images, labels = [], []
    with silent().phase(f"decoding {what} (once: then cached)", total=len(names)) as ph:
        for k, (label, name) in enumerate(names, 1):
            images.append(_decode(tree, name))
            labels.append(label)
            if k % 1000 == 0 or k == len(names):
                ph.update(k)
    return images, labels


def load_image_folder(source: str | Path, split: str, cache_dir: str | Path | None = None,
                      use_cache: bool = True) -> ImageDataset:
    """Load one split; classes are the sorted folder names, identical across splits."""
    source = Path(source)
    if not source.exists():
        raise RobustqError(f"{source}: no such file or directory")
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    cache_file = cache / "imagefolder" / f"{_cache_key(source, split)}.npz"
    if use_cache and cache_file.is_file():
        cached = _read_cache(cache_file, source, split)
        if cached is not None:
            return cached
    try:
        tree = _Tree(source)
    except zipfile.BadZipFile as e:
        raise RobustqError(f"{source}: not a readable zip file ({e})") from None
    if split not in tree.files:
        found = ", ".join(sorted(tree.files)) or "none"
        raise RobustqError(f"{source}: missing split {split!r}: expected "
                           f"<root>/{split}/<class>/<image>; splits found: {found}")
    classes = tuple(sorted(tree.files[split]))
    for other, by_class in tree.files.items():
        if tuple(sorted(by_class)) != classes:
            raise RobustqError(
                f"{source}: class folders differ between splits {split!r} {list(classes)} "
                f"and {other!r} {sorted(by_class)}"
            )
    images, labels = _decode_split(tree, split, classes, f"{source}:{split}")
    shapes = {a.shape for a in images}
    if len(shapes) > 1:
        raise RobustqError(f"{source}: images of split {split!r} differ in size/channels "
                           f"{sorted(shapes)}; robustq expects one image shape per data set")
    ds = ImageDataset(np.stack(images), np.asarray(labels, np.int64), classes, str(source), split)
    if use_cache:
        _write_cache(cache_file, ds)
    return ds


def read_encoded(source: str | Path, split: str, indices: list[int] | np.ndarray) -> list[bytes]:
    """The encoded files (e.g. JPEG bytes) behind images ``indices`` of ``load_image_folder``'s
    split, in the same order: for pipelines that decode images themselves."""
    tree = _Tree(Path(source))
    if split not in tree.files:
        raise RobustqError(f"{source}: missing split {split!r}")
    names = [n for cls in sorted(tree.files[split]) for n in sorted(tree.files[split][cls])]
    if len(indices) and not 0 <= min(indices) <= max(indices) < len(names):
        raise RobustqError(f"{source}: image index out of range 0..{len(names) - 1}")
    return [tree.read(names[i]) for i in indices]
