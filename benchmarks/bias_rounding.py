"""Why a deployed int8 model disagrees with its fake-quant checkpoint: agreement (predicted class,
N noisy test images) of the torch export module (``quant.export.exportable``, BatchNorm folded,
float bias) with the fake-quant model, then of the same module with its bias rounded to the int32
step (input step x weight step) that ONNX Runtime's integer convolution uses.

    python benchmarks/bias_rounding.py Q.safetensors [Q2.safetensors ...] --data DATA [--images 2000]
"""

from __future__ import annotations

import argparse

import torch

from robustq.data import load_dataset
from robustq.quant.checkpoint import load_model
from robustq.quant.export import ExportLayer, agreement, exportable


@torch.no_grad()
def round_biases(gm: torch.nn.Module) -> None:
    for m in gm.modules():
        if isinstance(m, ExportLayer) and m.act is not None and m.w_export is not None:
            step = m.act["scale"] / m.act["refine"] * m.w_export
            m.bias.copy_(torch.round(m.bias / step) * step)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--data", required=True)
    ap.add_argument("--images", type=int, default=2000)
    args = ap.parse_args()
    x, _ = load_dataset(args.data, "test").spread(args.images).tensors()
    for path in args.checkpoints:
        q, meta = load_model(path)
        xn = x + float(meta["sigma"]) * torch.randn(x.shape,
                                                    generator=torch.Generator().manual_seed(0))
        gm = exportable(q)
        before = agreement(q, gm, xn)
        round_biases(gm)
        print(f"{path}: export module {before:.4f}, bias at the int32 step "
              f"{agreement(q, gm, xn):.4f} ({len(xn)} noisy images)")


if __name__ == "__main__":
    main()
