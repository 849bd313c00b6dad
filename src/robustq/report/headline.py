""""What we found": the runs' question answered in a few sentences with numbers and paired
intervals, for the top of the report. Every number is read from a run's own files."""

from __future__ import annotations

from typing import Any

FP_NAME = "FP32"


def _pct(x: float | None) -> str:
    return "?" if x is None else f"{100 * x:.1f}%"


def compare_sentences(name: str, data: dict[str, Any]) -> list[str]:
    """One sentence per model against FP32 (ACR, smoothed accuracy, the paired difference and
    its interval), then which model certifies best, for one compare run."""
    rows = {r["name"]: r for r in data.get("rows", [])}
    fp = rows.get(FP_NAME)
    out = []
    for d in data.get("paired", []):
        if FP_NAME not in (d["a"], d["b"]):
            out.append(_between_quantized(d))
            continue
        if fp is None:
            continue
        other = d["a"] if d["b"] == FP_NAME else d["b"]
        sign = 1 if d["b"] == FP_NAME else -1          # always "other minus FP32"
        lo, hi = sorted((sign * d["acr"]["low"], sign * d["acr"]["high"]))
        q = rows[other]
        verdict = "below FP32" if hi < 0 else "above FP32" if lo > 0 else "not distinguishable " \
            "from FP32 at this sample size"
        out.append(f"{other} at {q.get('bitops_percent', 100):.2f}% BitOPs: ACR "
                   f"{q['acr']:.3f} vs FP32 {fp['acr']:.3f}, {sign * d['acr']['mean']:+.3f} "
                   f"[{lo:+.3f}, {hi:+.3f}] ({verdict}; paired over {d['images']} test images, "
                   f"{100 * d.get('confidence', 0.95):.0f}% interval); smoothed accuracy "
                   f"{_pct(q.get('smoothed_accuracy'))} vs {_pct(fp.get('smoothed_accuracy'))}.")
    quantized = [r for n, r in rows.items() if n != FP_NAME and r.get("acr") is not None]
    if len(quantized) > 1:
        best = max(quantized, key=lambda r: r["acr"])
        out.append(f"Highest ACR among the quantized models of {name}: {best['name']} "
                   f"({best['acr']:.3f}).")
    return out


def _between_quantized(d: dict[str, Any]) -> str:
    """The paired ACR difference of two quantized models, a minus b."""
    lo, hi = d["acr"]["low"], d["acr"]["high"]
    verdict = (f"{d['a']} certifies larger radii" if lo > 0 else f"{d['b']} certifies larger "
               "radii" if hi < 0 else "no difference shown at this sample size")
    return (f"{d['a']} minus {d['b']}: ACR {d['acr']['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}] "
            f"({verdict}; paired over {d['images']} test images).")


def certify_sentence(name: str, summary: dict[str, Any], how: str) -> str:
    return (f"{name} ({how}): smoothed accuracy {_pct(summary.get('smoothed_accuracy'))}, ACR "
            f"{summary.get('acr', float('nan')):.3f} on {summary.get('images', '?')} images.")


def what_we_found(records: list) -> list[str]:
    """Sentences for the report's top: compares and demos first (they answer "how much does
    quantization cost"), else searches' final models, else plain certifications."""
    out: list[str] = []
    for r in records:
        if r.kind == "compare":
            out += compare_sentences(r.name, r.data)
        if r.kind == "demo" and r.data.get("comparison"):
            out += compare_sentences(r.name, r.data["comparison"])
    for r in records if not out else []:
        f = r.data.get("final") if r.kind == "search" else None
        if f:
            out.append(f"The {r.name} search's best policy ({f.get('bitops_percent', 0):.2f}% "
                       f"BitOPs), fine-tuned and certified on the test split (n={f.get('n')}): "
                       f"smoothed accuracy {_pct(f.get('smoothed_accuracy'))}, ACR "
                       f"{f.get('acr', float('nan')):.3f} on {f.get('images', '?')} images.")
    if not out:
        for r in records:
            s = r.data.get("summary") if r.kind in ("certify", "irs") else None
            if s:
                out.append(certify_sentence(r.name, s, r.kind))
    return out


HEADLINE_HEADER = ["model", "BitOPs %", "smoothed acc", "ACR", "ACR minus FP32 [95% interval]",
                   "images"]


def _vs_fp(name: str, paired: list[dict[str, Any]]) -> str:
    for d in paired:
        if {d["a"], d["b"]} == {name, FP_NAME}:
            sign = 1 if d["b"] == FP_NAME else -1
            lo, hi = sorted((sign * d["acr"]["low"], sign * d["acr"]["high"]))
            return f"{sign * d['acr']['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}]"
    return ""


def headline_rows(records: list) -> list[list[Any]]:
    """The compact table under "What we found": one row per model of every compare and demo
    run (human names, as those runs name them), FP32 first."""
    tables = [(r.name, r.data if r.kind == "compare" else r.data["comparison"])
              for r in records if r.kind == "compare"
              or (r.kind == "demo" and r.data.get("comparison"))]
    out = []
    for run, data in tables:
        rows = sorted(data.get("rows", []), key=lambda x: x["name"] != FP_NAME)
        out += [[q["name"] if len(tables) == 1 else f"{q['name']} ({run})",
                 q.get("bitops_percent"), q.get("smoothed_accuracy"), q.get("acr"),
                 "" if q["name"] == FP_NAME else _vs_fp(q["name"], data.get("paired", [])),
                 q.get("images")] for q in rows]
    return out
