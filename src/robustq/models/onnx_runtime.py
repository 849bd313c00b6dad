"""Run an exported ONNX classifier (``robustq export``) in ONNX Runtime, as a torch module.

``OnnxClassifier(path)`` maps [0, 1] images (N, C, H, W) to logits like any robustq model, so
``Smooth`` samples the deployed classifier itself: its certificate covers the file that ships.
ONNX Runtime is an optional dependency (``pip install robustq[deploy]``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustq.utils.errors import RobustqError

META_KEY = "robustq"


def _runtime():
    try:
        import onnxruntime
    except ImportError:
        raise RobustqError("ONNX models need onnxruntime: pip install 'robustq[deploy]'") from None
    return onnxruntime


class OnnxClassifier(nn.Module):
    """An ONNX Runtime session behind ``forward`` (CPU, ``torch.get_num_threads()`` threads,
    every graph optimization: QDQ pairs become int8 kernels)."""

    def __init__(self, path: str | Path, meta: dict[str, Any]) -> None:
        super().__init__()
        ort = _runtime()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:        # ONNX Runtime raises its own exception types
            raise RobustqError(f"{path}: ONNX Runtime cannot load it ({e})") from None
        self.input = self.session.get_inputs()[0].name
        card = meta["card"]
        self.num_classes, self.in_channels = int(card["num_classes"]), int(card["in_channels"])
        self.path, self.meta = str(path), meta

    def __reduce__(self) -> tuple[Any, ...]:
        """To a worker process as its file: the session is opened again there."""
        return (OnnxClassifier, (self.path, self.meta))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input: x.detach().float().contiguous().numpy()})[0]
        return torch.from_numpy(out)

    def train(self, mode: bool = True) -> OnnxClassifier:     # a deployed model is inference-only
        return super().train(False)


def read_onnx_meta(path: str | Path) -> dict[str, Any]:
    """The robustq metadata of an exported ONNX file (card, sigma, quant, source hash)."""
    try:
        import onnx
    except ImportError:
        raise RobustqError("ONNX models need onnx: pip install 'robustq[deploy]'") from None
    path = Path(path)
    if not path.is_file():
        raise RobustqError(f"{path}: no such ONNX file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:          # protobuf decode errors
        raise RobustqError(f"{path}: not a readable ONNX file ({e})") from None
    props = {p.key: p.value for p in proto.metadata_props}
    try:
        meta = json.loads(props[META_KEY])
    except (KeyError, json.JSONDecodeError):
        raise RobustqError(f"{path}: no robustq metadata (export it with `robustq export`)") \
            from None
    if not isinstance(meta, dict) or not isinstance(meta.get("card"), dict):
        raise RobustqError(f"{path}: robustq metadata lacks the model card")
    return meta


def load_onnx(path: str | Path) -> tuple[OnnxClassifier, dict[str, Any]]:
    """The deployed classifier at ``path`` and its metadata."""
    meta = read_onnx_meta(path)
    return OnnxClassifier(path, meta), {**meta, "deployed": {"path": str(Path(path).resolve()),
                                                             "format": "onnx"}}
