"""Probe (issue 20): why LSQ at 2 bits loses half its accuracy on the standard ResNet-20.

One QAT epoch over 10,000 training images with the deploy recipe otherwise (KD w = 0.5, fused
kernels, first and last layers 8-bit), LSQ's step initialized as in the paper (2 mean|v| /
sqrt(Q_P), ``mean``) or as the step of least squared quantization error on the first batch
(``mse``: all steps; ``mse-fixed``: all steps, the activations' then not learned; ``mse-act``:
activation steps only, which is the ``lsq_mse`` method). The MSE step is found by a grid of
59 multiples (0.1-3.0) of the paper's (``quant.quantizers.mse_step``). A go/no-go probe: the
inits are patched into ``LSQQuantizer`` for this process only. Prints the epoch record (test
accuracy on 1,000 test images).

    python benchmarks/lsq_act_init.py mse-act 2/2 --out runs/probe/lsq_mse_act_w2a2
"""

from __future__ import annotations

import argparse
import json

import torch

from robustq.quant import quantizers as Q
from robustq.quant.quantizers import mse_step
from robustq.quant.workflow import QuantizeJob, run_quantize

INITS = ("mean", "mse", "mse-fixed", "mse-act")


def patch(init: str) -> None:
    """Every LSQ step starts at the MSE step for "mse" and "mse-fixed" (the latter's activation
    steps then stay fixed); "mean" is the paper's init and "mse-act" the lsq_mse method itself
    (main), so neither patches anything."""
    if init not in ("mse", "mse-fixed"):
        return

    def init_step(self: Q.LSQQuantizer, x: torch.Tensor) -> None:
        self.set_step(mse_step(x, *self.q_range()))
        if init == "mse-fixed" and not bool(self.signed):
            self.step.requires_grad_(False)

    Q.LSQQuantizer.init_step = init_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("init", choices=INITS)
    ap.add_argument("bits", help="W/A, e.g. 2/2")
    ap.add_argument("--checkpoint", default="zoo/resnet20_cifar10_sigma0_v2.safetensors")
    ap.add_argument("--data", default="../shared/data/cifar10-jpeg.zip")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    patch(args.init)
    torch.set_num_threads(1)
    job = QuantizeJob.from_recipe("deploy", checkpoint=args.checkpoint, data=args.data,
                                  bits=args.bits,
                                  method="lsq_mse" if args.init == "mse-act" else "lsq",
                                  epochs=1, train_images=10000,
                                  quant_kernels="compiled", seed=0)
    run_quantize(job, args.out)
    print(json.dumps({"init": args.init, "bits": args.bits,
                      "epoch": json.loads(open(f"{args.out}/log.jsonl").readline())}))


if __name__ == "__main__":
    main()
