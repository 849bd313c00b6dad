"""``robustq export``: an FP or quantized checkpoint as ONNX (QDQ, int8 kernels in ONNX
Runtime), with the policy, method, sigma and source hash in its metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer

from robustq.cli.common import NOTHING, console, friendly_errors
from robustq.cli.train_cmd import DataOpt
from robustq.utils.errors import RobustqError
from robustq.utils.validate import check_int


def calibration(checkpoint: Path, data: str) -> torch.Tensor:
    """Noisy training images at the checkpoint's sigma, for ``--int8``."""
    from robustq.data import load_dataset
    from robustq.quant.checkpoint import load_model
    from robustq.quant.engines import CALIBRATION_IMAGES, calibration_images

    meta = load_model(checkpoint)[1]
    if meta.get("quant"):
        raise RobustqError(f"{checkpoint}: --int8 is for FP checkpoints (a quantized one "
                           "exports its own int8 layers)")
    images = load_dataset(data, "train").spread(CALIBRATION_IMAGES).tensors()[0]
    return calibration_images(images, float(meta.get("sigma") or 0.0))


@friendly_errors(out_file=True, on_interrupt=NOTHING)
def export_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="FP or quantized robustq checkpoint")],
    out: Annotated[Path, typer.Option(help="the .onnx file to write")],
    check: Annotated[int, typer.Option(help="noisy test images on which to report how often the "
                                       "deployed model predicts as the checkpoint (0: skip)")]
    = 0,
    data: DataOpt = "embedded",
    int8: Annotated[bool, typer.Option(help="quantize an FP checkpoint to int8 with ONNX "
                                       "Runtime, calibrated on noisy training images of --data "
                                       "(another classifier: certify the file)")] = False,
) -> None:
    """Export a checkpoint to ONNX for deployment (ONNX Runtime runs its QDQ layers as int8)."""
    if out.suffix != ".onnx":
        raise RobustqError(f"--out {out}: expected a .onnx file name")
    check_int(check, "--check", 0)
    from robustq.quant.export import agreement, export_onnx
    info = export_onnx(checkpoint, out, int8_calibration=calibration(checkpoint, data)
                       if int8 else None)
    q = info.get("quant") or {}
    console.print(f"{checkpoint} -> {out} ({out.stat().st_size / 1024:.0f} KiB, "
                  f"{q.get('method', 'fp')}, sigma {info.get('sigma')})")
    if check:
        from robustq.data import load_dataset
        from robustq.quant.checkpoint import load_model

        x, _ = load_dataset(data, "test").spread(check).tensors()
        sigma = float(info.get("sigma") or 0.0)
        x = x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
        rate = agreement(load_model(checkpoint)[0], load_model(out)[0], x)
        console.print(f"the deployed model predicts as the checkpoint on {rate:.2%} of {len(x)} "
                      f"noisy test images (sigma {sigma})")
