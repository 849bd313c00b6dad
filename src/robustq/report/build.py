"""``build_report(run_dirs, out)``: one self-contained HTML page from robustq results files.

Every number on the page is read from a results file named beside it (table captions and the
"source" column); nothing is recomputed from models. A run that has not finished contributes
what it has, and the page lists what is missing at the top.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robustq.bench.runner import METHODS
from robustq.report import plots
from robustq.report.collect import RunRecord, discover
from robustq.report.headline import HEADLINE_HEADER, headline_rows, what_we_found
from robustq.report.page import bullets, details, figure, fmt, page, para, row, table
from robustq.report.runs import amplification_section, models_section
from robustq.report.samples import bench_samples
from robustq.search.compare import COMPARE_FILE
from robustq.search.search import FINAL_FILE
from robustq.utils.errors import RobustqError
from robustq.utils.io import atomic_write_text

CERT_HEADER = ["model", "certification", "BitOPs %", "size KiB", "clean acc", "smoothed acc",
               "ACR", "CA@0.25", "CA@0.5", "CA@0.75", "CA@1.0", "abstain", "images", "source"]


def _rel(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def _ca(ca: dict[str, float], r: float) -> float | None:
    return next((v for k, v in ca.items() if abs(float(k) - r) < 1e-9), None)


def _verdict(holds: bool | None) -> str:
    return "not enough data yet" if holds is None else "holds" if holds else "does not hold"


def _evidence(d: Any) -> str:
    """Nested numbers as compact text (3 decimals)."""
    if isinstance(d, dict):
        return "; ".join(f"{k}: {_evidence(v)}" for k, v in d.items() if v is not None)
    if isinstance(d, list | tuple):
        return "[" + ", ".join(_evidence(v) for v in d) + "]"
    return fmt(d)


class _Report:
    def __init__(self, records: list[RunRecord], base: Path) -> None:
        self.records, self.base = records, base
        self.missing = [m for r in records for m in r.missing]
        self.cert_rows: list[list[Any]] = []
        self.curves: dict[str, dict] = {}
        self.points: list[tuple[str, float, float]] = []

    def of(self, kind: str | tuple[str, ...]) -> list[RunRecord]:
        kinds = (kind,) if isinstance(kind, str) else kind
        return [r for r in self.records if r.kind in kinds]

    def src(self, *paths: Path) -> str:
        return ", ".join(_rel(p, self.base) for p in paths)

    # ----- certification: every certified model in one table, curves, ACR vs BitOPs
    def _add_cert(self, label: str, how: str, s: dict, cost: dict | None, clean: float | None,
                  source: Path, curve: dict | None) -> None:
        ca = s.get("certified_accuracy", {})
        bitops = cost.get("bitops_percent") if cost else None
        self.cert_rows.append([label, how, bitops, cost.get("size_kib") if cost else None, clean,
                               s.get("smoothed_accuracy"), s.get("acr"),
                               *(_ca(ca, r) for r in (0.25, 0.5, 0.75, 1.0)),
                               s.get("abstention_rate"), s.get("images"),
                               self.src(source)])
        if curve:
            self.curves[f"{label} ({how})"] = curve
        if bitops is not None and s.get("acr") is not None:
            self.points.append((f"{label} ({how})", bitops, s["acr"]))

    def certification(self) -> str:
        for r in self.of(("certify", "irs")):
            s = r.data.get("summary")
            if not s:
                continue
            meta = r.data["meta"]
            cfg = meta.get("config", {})
            how = (f"IRS n_p={cfg.get('n_p')}" if r.kind == "irs"
                   else f"full n={cfg.get('n')}")
            self._add_cert(r.name, how, s, meta.get("model", {}).get("cost"), None,
                           r.sources[0], s.get("curve"))
        for r in self.of("search"):
            f = r.data.get("final")
            if f:
                self._add_cert(f"{r.name} best", f"full n={f.get('n')}", f,
                               {"bitops_percent": f.get("bitops_percent"),
                                "size_kib": f.get("size_kib")}, f.get("clean_accuracy"),
                               r.path / FINAL_FILE, r.data.get("final_curve"))
        for r in self.of("compare"):
            for line in r.data["rows"]:
                f = {**line, "certified_accuracy": {k[3:]: v for k, v in line.items()
                                                    if k.startswith("ca_")}}
                self._add_cert(f"{r.name}/{line['name']}", f"full n={line.get('n')}", f,
                               {"bitops_percent": line.get("bitops_percent"),
                                "size_kib": line.get("size_kib")}, line.get("clean_accuracy"),
                               r.path / COMPARE_FILE, r.data["curves"].get(line["name"]))
        if not self.cert_rows:
            return ""
        out = table(CERT_HEADER, self.cert_rows, "Smoothed classifiers (sigma as each run "
                    "records it). CA@r: certified accuracy at l2 radius r ([0,1] pixel units). "
                    "Each row's numbers come from the file in its source column.")
        out += self._paired()
        if self.curves:
            out += figure(plots.certified_accuracy_curves(self.curves),
                          "Certified accuracy versus radius (from each run's summary curve).",
                          "certified accuracy curves")
        episodes = [(e["bitops_percent"], e["acr"]) for r in self.of("search")
                    for e in r.data["episodes"] if e.get("acr") is not None]
        if self.points:
            out += figure(plots.acr_vs_bitops(self.points, episodes),
                          "ACR versus BitOPs (% of FP32): models evaluated on the test split, "
                          "the Pareto front dashed; grey: search episodes (held-out split, "
                          "incremental certification).", "ACR versus BitOPs")
        return out

    def _paired(self) -> str:
        """Each compare's paired differences (same images), as its compare.json records them."""
        out = ""
        for r in self.of("compare"):
            rows = [[f"{d['a']} - {d['b']}",
                     *(d[k][q] for k in ("acr", "smoothed_accuracy") for q in ("mean", "low",
                                                                              "high")),
                     d["acr"]["significant"], d["smoothed_accuracy"]["significant"],
                     d["images"]] for d in r.data.get("paired", [])]
            if rows:
                conf = r.data["paired"][0]["confidence"]
                out += table(["a - b", "ACR diff.", "low", "high", "smoothed acc. diff.", "low",
                              "high", "ACR sig.", "acc. sig.", "images"], rows,
                             f"{r.name}: paired differences on the same test images, a minus b, "
                             f"with {100 * conf:.0f}% t intervals over images (the models' "
                             f"fine-tuning seeds not included); sig.: the interval excludes 0. "
                             f"From {self.src(r.path / 'compare.json')}.")
        return out

    # ----- search
    def search(self) -> str:
        runs = self.of("search")
        if not runs:
            return ""
        out, series = "", {}
        warmup = 0
        for r in runs:
            c, eps = r.data["config"], r.data["episodes"]
            if eps and c.get("strategy") != "uniform":
                series[f"{r.name} ({c['strategy']})"] = [e["reward"] for e in eps]
                warmup = max(warmup, c.get("warmup", 0))
            cost = [[k, float(np.mean([e[k] for e in eps])) if eps else None]
                    for k in ("finetune_s", "reward_s", "agent_s", "episode_s")]
            shape = ("one policy" if c["strategy"] == "uniform" else
                     f"{len(eps)} episodes (warm-up {c.get('warmup')})")
            out += f"<h3>{r.name}</h3>" + para(
                f"strategy {c['strategy']}, budget {c['budget']}% BitOPs, {shape}, "
                f"method {c['method']}, reward on "
                f"{c['holdout_images']} held-out training images"
                + (f" ({c['cert_images']} certified, n={c['n']}, n_p={c['n_p']})"
                   if c["strategy"] == "arq" else ""), "muted")
            out += table(["mean seconds per episode", "value"], cost,
                         f"from {self.src(r.path / 'episodes.jsonl')}")
            if r.data.get("policy"):
                pol = r.data["policy"].get("layers", r.data["policy"])
                out += figure(plots.policy_bits(pol), f"Per-layer bits of {r.name}'s best policy "
                              f"(from {self.src(r.data['policy_source'])}); FP = full precision.",
                              f"policy of {r.name}")
        if series:
            out += figure(plots.rewards(series, warmup), "Reward per episode (dotted: best so "
                          "far); warm-up episodes explore at random.", "reward per episode")
            out += para(REWARDS, "muted")
        return out

    # ----- robustness grid
    def bench(self) -> str:
        out = para(BENCH_METRICS, "muted") if self.of("bench") else ""
        for r in self.of("bench"):
            res, cfg = r.data["results"], r.data["config"]
            models = res.get("models", [])
            src = self.src(r.sources[0])
            out += f"<h3>{r.name}</h3>" + para(
                f"{res.get('images')} test images (attacks on {res.get('attack_images')}, "
                f"AutoAttack on {res.get('autoattack_images')}); checkpoint {cfg['checkpoint']}; "
                f"mCE relative to {res.get('mce_reference', 'the FP model')}.", "muted")
            header = ["model", "clean", "WCAR", "WCAR (grad.)", "masking", "mCE", "mNR",
                      "ACC_s", "ACC_s std"]
            out += table(header, [[m["model"], m.get("clean_accuracy"), m.get("wcar"),
                                   m.get("wcar_gradient"), m.get("masking"), m.get("mce"),
                                   m.get("mnr"), m.get("acc_s"), m.get("acc_s_std")]
                                  for m in models], f"from {src}")
            out += self._heatmaps(models, cfg)
            findings = res.get("findings") or []
            if findings:
                out += table(["finding", "verdict", "numbers"],
                             [[f.get("claim"), _verdict(f.get("holds")),
                               _evidence({k: v for k, v in f.items()
                                          if k not in ("claim", "holds")})]
                              for f in findings],
                             f"RobustMQ's findings checked on this run (from {src})")
            tp = res.get("throughput_images_per_s", {})
            secs = res.get("seconds_per_family", {})
            if tp:
                out += table(["family", "images/s", "seconds (summed over units)"],
                             [[k, v, secs.get(k)] for k, v in tp.items()
                              if k != "total_seconds"]
                             + [["all units", None, tp.get("total_seconds")]],
                             f"throughput and time from {self.src(r.path / 'units.jsonl')}")
            out += self._samples(r)
        return out

    def _heatmaps(self, models: list[dict], cfg: dict) -> str:
        methods = [m for m in METHODS if m in cfg["methods"]]
        bits = list(cfg["bits"])
        fp = next((m for m in models if m["model"] == "fp"), {})
        # fixed colour scale per metric: accuracies on [0, 1]; mCE (FP = 1) on [0, 2]
        metrics = [("clean_accuracy", "clean accuracy", False, (0, 1)), ("wcar", "WCAR", False,
                   (0, 1)), ("wcar_gradient", "WCAR (FGSM/PGD only)", False, (0, 1)),
                   ("mce", "mCE", True, (0, 2)), ("acc_s", "ACC_s (systematic)", False, (0, 1))]
        figs = []
        for key, title, reverse, scale in metrics:
            grid = np.full((len(methods), len(bits)), np.nan)
            for m in models:
                if m.get(key) is not None and m["method"] in methods and m["bits"] in bits:
                    grid[methods.index(m["method"]), bits.index(m["bits"])] = m[key]
            if np.isnan(grid).all():
                continue
            figs.append(figure(plots.heatmap(grid, methods, [f"{b}-bit" for b in bits],
                                         f"{title} (FP: {fmt(fp.get(key))})", reverse=reverse,
                                         scale=scale),
                               f"{title}, method x bits (blank: not run yet)",
                               f"{title} heat map"))
        return row(figs)

    def _samples(self, r: RunRecord) -> str:
        try:
            s = bench_samples(r.path, r.data["config"])
        except (RobustqError, OSError, ValueError) as e:
            self.missing.append(f"{r.name}: sample images unavailable ({e})")
            return ""
        out = ""
        if s["natural"]:
            out += figure(plots.image_grid(s["clean"] + s["natural"]),
                          "One test image under each corruption (severity 3), as benchmarked.",
                          "corruption samples")
        if s["systematic"]:
            out += figure(plots.image_grid(s["clean"] + s["systematic"]),
                          "The same image through each decoder / resize pipeline.",
                          "systematic samples")
        return out

    # ----- Defensive Quantization
    def dq(self) -> str:
        out = ""
        for r in self.of("dq"):
            rows = r.data["rows"]
            keys = [k for k in rows[0] if k not in ("model", "a_bits", "amplification")]
            out += table(["model", "A bits", *keys, "mean amplification"],
                         [[x["model"], x["a_bits"], *(x[k] for k in keys),
                           float(np.nanmean(list(x["amplification"].values())))]
                          for x in rows],
                         f"from {self.src(r.sources[0])}")
            curves = {f"{x['model']} a{x['a_bits']}": x["amplification"] for x in rows}
            out += figure(plots.amplification(curves, plots.dq_styles(rows)),
                          "Per-layer error amplification under "
                          "PGD at the largest eps.", "error amplification")
        return out

    # ----- demo and provenance
    def demo(self) -> str:
        out = ""
        for r in self.of("demo"):
            steps = r.data.get("steps", {})
            out += table(["step", "seconds"], [[k, v] for k, v in steps.items()]
                         + [["total", r.data.get("wall_time_s")]],
                         f"robustq demo timings, from {self.src(r.sources[0])}")
        return out

    def provenance(self) -> str:
        rows = []
        for r in self.records:
            p = r.provenance or {}
            v = p.get("versions", {})
            m = p.get("machine", {})
            rows.append([r.name, r.kind, p.get("command"), p.get("seed"), p.get("git_commit"),
                         ", ".join(f"{k} {x}" for k, x in v.items()),
                         _machine_cell(m), p.get("time")])
        return table(["run", "kind", "command", "seed", "commit", "versions", "machine",
                      "time (UTC)"], rows, "as each run recorded it")


def _machine_cell(m: dict) -> str:
    """A run's machine in one cell: processor x cores, threads and, where recorded, the SIMD level."""
    cell = f"{m.get('processor', '')} x{m.get('cpu_count', '')}, {m.get('torch_threads', '')} threads"
    return cell + (f", {m['cpu_capability']}" if m.get("cpu_capability") else "")


REWARDS = ("Rewards: ARQ's is 10 x (ACR of the quantized model - ACR of FP32), both certified "
           "on the same held-out training images, the quantized one incrementally (IRS) against "
           "the FP model's cache; HAQ's is 0.1 x (top-1 accuracy in % of the quantized model - "
           "FP32's) on the held-out images. 0 means 'as good as FP32'.")
BENCH_METRICS = ("Metrics (RobustMQ): clean = top-1 accuracy on the benchmark images; WCAR = "
                 "worst-case adversarial robustness: of the attacked images the model classifies "
                 "correctly, the fraction that every attack (FGSM, PGD and AutoAttack at every "
                 "budget) leaves correct; WCAR (grad.) "
                 "the same over FGSM/PGD only; masking = true where AutoAttack's gradient-free "
                 "Square broke images its white-box stages left correct (a sign of gradient "
                 "masking); mCE = mean corruption error over the "
                 "corruptions, each error summed over severities and divided by the FP model's "
                 "(FP = 1, lower is better); mNR = mean accuracy over every corruption and "
                 "severity; ACC_s = mean accuracy over the systematic decoder / resize pipelines, "
                 "ACC_s std its spread across them.")
DEFINITIONS = ('<p class="muted">ACR: average certified radius, the l2 radius (in [0, 1] pixel '
               "units) within which the smoothed classifier provably keeps its answer, 0 for a "
               "wrong or abstained image. Smoothed accuracy: how often the smoothed classifier "
               "is right (an abstention counts as wrong). Intervals: paired over the same test "
               "images (the same noise), a t interval of the per-image differences; they do "
               "not include the variation between fine-tuning seeds. No radius above "
               "sigma * Phi^-1(alpha^(1/n)) can be certified with n noise samples (sigma 0.25, "
               "alpha 0.001: 0.55 at n = 500, 0.80 at n = 10^4, 0.95 at n = 10^5), so certified "
               "accuracy at radius 1.0 is 0 there; IRS rows certify with n_p samples, which "
               "caps their radii lower still (the reason they differ from full rows).</p>")


def build_report(run_dirs: Sequence[str | Path], out: str | Path,
                 title: str = "robustq report") -> dict[str, Any]:
    """Write the HTML report of the runs under ``run_dirs`` to ``out`` (atomically). Returns
    ``{"runs", "missing", "bytes"}``. Raises ``RobustqError`` for a path with no results."""
    out = Path(out)
    records = discover(list(run_dirs))
    rep = _Report(records, out.parent)
    parts = [("certification", "Certified robustness", rep.certification()),
             ("search", "Policy search", rep.search()),
             ("bench", "Robustness benchmark", rep.bench()),
             ("dq", "Defensive Quantization", rep.dq()),
             ("models", "Trained and quantized models", models_section(records, rep.src)),
             ("amplification", "Error amplification",
              amplification_section(records, rep.src)),
             ("demo", "Demo", rep.demo()),
             ("provenance", "Provenance", rep.provenance())]
    parts = [p for p in parts if p[2]]
    found = what_we_found(records)
    if found:
        compact = headline_rows(records)
        parts.insert(0, ("found", "What we found", bullets(found) + (
            table(HEADLINE_HEADER, compact, "the models compared above") if compact else "")
            + DEFINITIONS))
    runs = bullets([f"{r.name}: {r.kind} ({_rel(r.path, out.parent)})" for r in records])
    intro = details(f"{len(records)} run{'' if len(records) == 1 else 's'} read", runs)
    if rep.missing:
        intro += '<div class="missing"><b>Missing or unfinished</b>' + bullets(rep.missing) + \
            "</div>"
    html_text = page(title, parts, intro)
    atomic_write_text(out, html_text)
    return {"runs": [r.name for r in records], "missing": rep.missing, "bytes": len(html_text)}
