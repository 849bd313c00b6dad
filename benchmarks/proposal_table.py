"""Does a strategy learn? The mean held-out ACR of its proposals after its warm-up (or from
``DIR:START``) minus that of random policies scored with the same settings (``--random``
directories' episodes, each ``DIR[:STOP]`` taking those before STOP), with Welch's 95%
interval, as Markdown. Free of the winner's curse of a best-of-N; the searches must share the
FP cache and certification settings (``scripts/search_v2.sh`` with the same CERT).

    python benchmarks/proposal_table.py results/search/arq_b1.5625_e60_c100 \\
        results/search/tpe_arq_b1.5625_e30_c100 \\
        --random results/search/random_arq_b1.5625_e30_c100 \\
        --random results/search/arq_b1.5625_e60_c100:10
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from robustq.search.diagnostics import proposal_gain
from robustq.search.search import read_episodes
from robustq.utils.errors import RobustqError


def split_spec(spec: str) -> tuple[Path, int | None]:
    path, _, k = spec.partition(":")
    return Path(path), int(k) if k else None


def warmup_of(search_dir: Path) -> int:
    return int(json.loads((search_dir / "search.json").read_text())["config"]["warmup"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("searches", nargs="+", metavar="DIR[:START]")
    ap.add_argument("--random", action="append", required=True, metavar="DIR[:STOP]")
    args = ap.parse_args()
    try:
        pool = [e["acr"] for d, stop in map(split_spec, args.random)
                for e in read_episodes(d)[:stop]]
        print(f"random policies: {len(pool)}, mean held-out ACR {np.mean(pool):.4f} "
              f"(sd {np.std(pool, ddof=1):.4f})\n")
        print("| search | proposals (from episode) | mean held-out ACR | sd | minus random's "
              "mean, Welch 95% |\n| --- | --- | --- | --- | --- |")
        for d, start in map(split_spec, args.searches):
            start = warmup_of(d) if start is None else start
            acrs = [e["acr"] for e in read_episodes(d)[start:]]
            g = proposal_gain(d, pool, start)
            print(f"| {d.name} | {g['n']} (from {start}) | {np.mean(acrs):.4f} | "
                  f"{np.std(acrs, ddof=1):.4f} | {g['mean']:+.4f} [{g['low']:+.4f}, "
                  f"{g['high']:+.4f}] |")
    except (RobustqError, OSError, KeyError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
