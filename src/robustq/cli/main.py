"""Entry point: ``robustq <command>``.

The commands (and torch) are imported inside ``main``, so Ctrl-C while they load ends with one
line instead of a traceback, and ``robustq`` / ``robustq --help`` answer from the table below
without importing them (a few milliseconds instead of seconds; a test keeps the table equal to
the commands' own docstrings).
"""

from __future__ import annotations

import sys

ABOUT = "robustq: make neural networks small and provably robust."
OVERVIEW = {
    "train": "Train a classifier with Gaussian noise augmentation at sigma (for randomized "
             "smoothing).",
    "evaluate": "Clean accuracy and accuracy under Gaussian noise of a checkpoint.",
    "demo": "Search, certify, benchmark and report on the embedded CIFAR-10 default (a few "
            "minutes).",
    "certify": "Certify l2 robustness of the smoothed classifier (Cohen et al.), or IRS against "
               "a cache.",
    "quantize": "Quantize an FP checkpoint with a policy and fine-tune it with noise "
                "augmentation.",
    "cost": "Per-layer MACs, BitOPs and weight size of a checkpoint under a policy.",
    "bench": "Benchmark adversarial, natural and systematic robustness of quantized models.",
    "search": "Search per-layer bit-widths under a BitOPs budget; evaluate the best on the test "
              "split.",
    "shared": "Train one weight-sharing quantized model for cheap search episodes.",
    "compare": "Evaluate FP32 and a list of policies/checkpoints identically on the test split.",
    "amplification": "Per-layer error amplification of adversarial perturbations (Lin et al. "
                     "2019).",
    "report": "Write an HTML report (plots embedded, viewable offline) of the results under "
              "RUNS.",
    "export": "Export a checkpoint to ONNX for deployment (ONNX Runtime runs its QDQ layers as "
              "int8).",
    "models": "List the model architectures.",
}


def overview() -> str:
    """The top-level help text."""
    width = max(map(len, OVERVIEW)) + 2
    lines = ["Usage: robustq [OPTIONS] COMMAND [ARGS]...", "", ABOUT, "", "Commands:"]
    lines += [f"  {name:<{width}}{text}" for name, text in OVERVIEW.items()]
    lines += ["", "Options:", f"  {'--help':<{width}}Show this message and exit.", "",
              "`robustq COMMAND --help` lists a command's options."]
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:] in ([], ["--help"], ["-h"]):
        print(overview())
        return
    try:
        from robustq.cli.app import app
        from robustq.cli.progress import console_progress
        from robustq.utils.progress import use

        use(console_progress())
        app()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def __getattr__(name: str):
    if name == "app":          # ``from robustq.cli.main import app`` (tests, embedding)
        from robustq.cli.app import app

        return app
    raise AttributeError(name)
