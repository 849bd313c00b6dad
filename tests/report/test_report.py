"""The report: built from a real (tiny) demo run, traceable to its files, tolerant of
unfinished runs, clear about bad input, and rendered by headless Chromium where installed."""

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from robustq.cli.main import app
from robustq.report import build_report, discover
from robustq.report.demo import DemoConfig, run_demo
from robustq.report.plots import pareto_front
from robustq.utils.progress import CountingProgress

TINY = DemoConfig(data="embedded", episodes=2, warmup=1, finetune_images=200, holdout_images=50,
                  search_cert_images=5, search_n=200, n_p=100, test_images=10, n=200,
                  bench_images=20, attack_images=10, autoattack_images=0,
                  corruptions=("fog", "gaussian_noise"))


DEMO_EVENTS = CountingProgress()


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    rec = run_demo(TINY, out, say=lambda m: None, progress=DEMO_EVENTS)
    assert rec["finished"]
    return out


def test_every_long_demo_phase_reports_progress(demo):
    started = DEMO_EVENTS.labels("start")
    for phase in ("FP32: certifying test images", "FP cache: certifying", "episodes",
                  "final model: fine-tuning", "final model: certifying", "arq: IRS certification",
                  "uniform: IRS certification", "bench units"):
        assert any(label.startswith(phase) for label in started), (phase, started)
    fp_updates = [e for e in DEMO_EVENTS.events
                  if e[0] == "update" and e[1].startswith("FP32: certifying")]
    assert [e[2] for e in fp_updates] == list(range(1, TINY.test_images + 1))  # one per image


def _table_rows(page: str, *headers: str) -> list[list[str]]:
    """Cells of the first table whose headers start with ``headers``."""
    for t in re.findall(r"<table.*?</table>", page, re.S):
        heads = [html.unescape(h) for h in re.findall(r"<th>(.*?)</th>", t)]
        if tuple(heads[:len(headers)]) == headers:
            return [[html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r)]
                    for r in re.findall(r"<tr>(.*?)</tr>", t.split("<tbody>")[1])]
    raise AssertionError(f"no table starting with {headers}")


def test_demo_report_has_every_section(demo):
    page = (demo / "report.html").read_text()
    for anchor in ("certification", "search", "bench", "demo", "provenance"):
        assert f'id="{anchor}"' in page
    assert page.count("data:image/png;base64,") >= 8      # curves, Pareto, policy, rewards, ...
    assert "http://" not in page and "https://" not in page  # viewable offline
    assert "<script" not in page
    rec = json.loads((demo / "demo.json").read_text())
    assert set(rec["steps"]) == {"certify_fp", "search_arq", "search_uniform", "certify_irs",
                                 "bench", "report"}
    assert rec["provenance"]["git_commit"]
    simd = rec["provenance"]["machine"]["cpu_capability"]
    assert f", {simd}</td>" in page                  # the provenance table names the SIMD level


def test_every_certification_number_comes_from_its_source_file(demo):
    page = (demo / "report.html").read_text()
    rows = _table_rows(page, "model", "certification")
    assert len(rows) == 5          # FP full, ARQ/uniform IRS, ARQ/uniform full (search finals)
    for row in rows:
        src = demo / row[-1]
        s = json.loads(src.read_text())          # summary.json or a search's final.json
        assert row[6] == f"{s['acr']:.3f}"
        assert row[5] == f"{s['smoothed_accuracy']:.3f}"
        ca = s["certified_accuracy"]
        assert row[7] == f"{ca['0.25']:.3f}" and row[10] == f"{ca['1.0']:.3f}"
    by_name = {r[0]: r for r in rows}
    final = json.loads((demo / "search/arq/final.json").read_text())
    arq = by_name[f"{demo.name}/search/arq best"]
    assert arq[2] == f"{final['bitops_percent']:.3f}"
    assert float(arq[2]) <= TINY.budget + 1e-9


def test_bench_table_matches_results_json(demo):
    page = (demo / "report.html").read_text()
    results = json.loads((demo / "bench/results.json").read_text())
    rows = {r[0]: r for r in _table_rows(page, "model", "clean")}
    for m in results["models"]:
        assert rows[m["model"]][1] == f"{m['clean_accuracy']:.3f}"
        assert rows[m["model"]][7] == f"{m['acc_s']:.3f}"


def test_half_finished_runs_say_what_is_missing(demo, tmp_path):
    run = tmp_path / "demo"
    shutil.copytree(demo, run)
    tsv = run / "certify/fp/certify.tsv"
    lines = tsv.read_text().splitlines(keepends=True)
    tsv.write_text("".join(lines[:4]) + lines[4][:7])        # 3 images and a cut line
    (run / "certify/fp/summary.json").unlink()
    (run / "search/arq/final.json").unlink()
    (run / "bench/results.json").unlink()
    shutil.rmtree(run / "bench/cells/lsq_w8a8")
    rec = json.loads((run / "demo.json").read_text())
    (run / "demo.json").write_text(json.dumps({**rec, "finished": False, "step": "bench"}))
    result = build_report([run], tmp_path / "r.html")
    missing = "\n".join(result["missing"])
    assert "3 of 10 images" in missing
    assert "no test-split evaluation yet" in missing
    assert "benchmark unfinished" in missing
    assert "demo has not finished" in missing
    page = (tmp_path / "r.html").read_text()
    assert "Missing or unfinished" in page
    fp_row = next(r for r in _table_rows(page, "model", "certification") if r[0] == "demo/certify/fp")
    assert fp_row[12] == "3"                                   # computed from the 3 rows


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    res = CliRunner().invoke(app, ["report", str(tmp_path / "nope"), "--out",
                                   str(tmp_path / "r.html")])
    assert res.exit_code == 2 and "no such run directory" in res.output
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(app, ["report", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "holds no robustq results" in res.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "dq.json").write_text("{not json")
    res = CliRunner().invoke(app, ["report", str(bad), "--out", str(tmp_path / "r.html")])
    assert res.exit_code == 2 and "unreadable results file" in res.output
    assert not (tmp_path / "r.html").exists()


def test_discover_treats_a_marked_directory_as_one_run(demo):
    kinds = sorted((r.kind, r.name) for r in discover([demo]))
    assert ("search", f"{demo.name}/search/arq") in kinds
    assert not any("episodes" in name for _, name in kinds)     # a search's inner IRS runs


@given(st.lists(st.tuples(st.floats(0.1, 100), st.floats(0, 1)), min_size=1, max_size=30))
def test_pareto_front_is_exactly_the_undominated_points(points):
    front = pareto_front(points)
    for c, v in points:     # every point is dominated by (or equal to) a front point
        assert any(fc <= c and fv >= v for fc, fv in front)
    for fc, fv in front:    # no front point is strictly dominated
        assert not any((c <= fc and v > fv) or (c < fc and v >= fv) for c, v in points)


CHECK = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.type)), true);
window.addEventListener('load', () => {
  const imgs = [...document.images];
  document.body.setAttribute('data-check', JSON.stringify({
    images: imgs.length, broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).length,
    tables: document.querySelectorAll('table tbody tr').length, errors: window.__errors,
    found: (f => f && {top: f.getBoundingClientRect().top, bullets: f.querySelectorAll('li').length,
                       rows: f.querySelectorAll('tbody tr').length, first: f.parentElement
                       .querySelector('[id]') === f})(document.getElementById('found'))}));
});
</script>"""


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Debian's chromium is not installed (apt-get install chromium)")
def test_headless_chromium_renders_plots_and_tables(demo, tmp_path):
    page = (demo / "report.html").read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", CHECK + "</body>"))
    flags = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run([*flags, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    match = re.search(r'data-check="([^"]*)"', dom)
    assert match, "the page did not finish loading in Chromium"
    check = json.loads(html.unescape(match.group(1)))
    assert check["errors"] == []
    assert check["images"] >= 8 and check["broken"] == 0
    assert check["tables"] >= 10
    found = check["found"]        # the headline block: first, at the top, sentences and table
    assert found and found["first"] and found["top"] < 400
    assert found["bullets"] >= 3 and found["rows"] == 3          # FP32, ARQ, uniform 4/4
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,2400",
                    (demo / "report.html").as_uri()], capture_output=True, timeout=120)
    img = np.asarray(Image.open(shot).convert("L"))
    assert img.shape == (2400, 1200)
    assert img.std() > 20                # text, tables and plots, not a blank page


def test_compare_table_rows_and_curves_reach_the_report(demo, tmp_path):
    from robustq.data.embedded import embedded_dir, embedded_set

    res = CliRunner().invoke(app, [
        "compare", str(embedded_dir() / embedded_set("embedded").model),
        str(demo / "search/arq/best_policy.json"),
        "--out", str(tmp_path / "cmp"), "--finetune-images", "100", "--holdout-images", "50",
        "--test-images", "10", "--test-n", "100", "--final-recipe", "none"])   # tables, not QAT
    assert res.exit_code == 0, res.output
    build_report([tmp_path / "cmp"], tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    rows = {r[0]: r for r in _table_rows(page, "model", "certification")}
    table = json.loads((tmp_path / "cmp/compare.json").read_text())["rows"]
    assert set(rows) == {f"cmp/{t['name']}" for t in table}
    for t in table:
        assert rows[f"cmp/{t['name']}"][6] == f"{t['acr']:.3f}"
    assert "Certified accuracy versus radius" in page
    paired = json.loads((tmp_path / "cmp/compare.json").read_text())["paired"]
    (diff,) = _table_rows(page, "a - b", "ACR diff.")
    assert diff[0] == "arq - FP32" and paired[0]["a"] == "arq"
    assert diff[1] == f"{table[1]['acr'] - table[0]['acr']:.3f}" == f"{paired[0]['acr']['mean']:.3f}"
    top = page[page.index('id="found"'):page.index('id="certification"')]  # the page opens
    assert "What we found" in top                                          # with the answer
    assert f"ACR {table[1]['acr']:.3f} vs FP32 {table[0]['acr']:.3f}" in top
    assert f"[{paired[0]['acr']['low']:+.3f}, {paired[0]['acr']['high']:+.3f}]" in top
    assert "ACR: average certified radius" in top


def test_headline_reads_the_paired_interval_in_either_order():
    from robustq.report.headline import compare_sentences

    rows = [{"name": "FP32", "acr": 0.356, "smoothed_accuracy": 0.714, "bitops_percent": 100.0},
            {"name": "ARQ", "acr": 0.272, "smoothed_accuracy": 0.65, "bitops_percent": 1.53},
            {"name": "uniform 4/4", "acr": 0.289, "smoothed_accuracy": 0.66,
             "bitops_percent": 1.5625}]
    diff = {"mean": -0.084, "low": -0.098, "high": -0.070, "significant": True}
    fp_minus_uniform = {"mean": 0.012, "low": -0.004, "high": 0.028, "significant": False}
    paired = [{"a": "ARQ", "b": "FP32", "images": 500, "confidence": 0.95, "acr": diff},
              {"a": "FP32", "b": "uniform 4/4", "images": 500, "confidence": 0.95,
               "acr": fp_minus_uniform}]
    arq, uni, best = compare_sentences("cmp", {"rows": rows, "paired": paired})
    assert arq.startswith("ARQ at 1.53% BitOPs: ACR 0.272 vs FP32 0.356, -0.084 "
                          "[-0.098, -0.070] (below FP32")
    assert "-0.012 [-0.028, +0.004] (not distinguishable" in uni   # uniform minus FP32
    assert best.endswith("uniform 4/4 (0.289).")


def test_demo_opens_with_its_paired_comparison_and_a_compact_table(demo):
    rec = json.loads((demo / "demo.json").read_text())
    cmp = rec["comparison"]
    assert [r["name"] for r in cmp["rows"]] == ["FP32", "ARQ", "uniform 4/4"]
    assert {(d["a"], d["b"]) for d in cmp["paired"]} == {("ARQ", "FP32"), ("uniform 4/4", "FP32"),
                                                         ("uniform 4/4", "ARQ")}
    page = (demo / "report.html").read_text()
    top = page[page.index('id="found"'):page.index('id="certification"')]
    arq = cmp["rows"][1]
    assert f"ARQ at {arq['bitops_percent']:.2f}% BitOPs: ACR {arq['acr']:.3f}" in top
    assert "uniform 4/4 minus ARQ: ACR" in html.unescape(top)
    rows = _table_rows(top, "model", "BitOPs %", "smoothed acc", "ACR")
    assert [r[0] for r in rows] == ["FP32", "ARQ", "uniform 4/4"]
    arq_fp = next(d for d in cmp["paired"] if d["a"] == "ARQ")["acr"]
    assert rows[1][4].startswith(f"{arq_fp['mean']:+.3f} [")


def test_quantize_and_amplification_runs_reach_the_report(tmp_path):
    from robustq.data.embedded import embedded_dir, embedded_set

    ckpt = str(embedded_dir() / embedded_set("embedded").model)
    res = CliRunner().invoke(app, ["quantize", ckpt, "--bits", "4/4", "--first-last", "0",
                                   "--epochs", "0", "--out", str(tmp_path / "runs/q4")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["amplification", ckpt, str(tmp_path / "runs/q4/model"
                                   ".safetensors"), "--attack", "fgsm", "--images", "8",
                                   "--out", str(tmp_path / "runs/amp/amplification.json")])
    assert res.exit_code == 0, res.output
    build_report([tmp_path / "runs"], tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    (row,) = _table_rows(page, "run", "arch", "quantization")
    assert row[0] == "runs/q4" and row[2] == "lsq uniform W4/A4"
    amp = json.loads((tmp_path / "runs/amp/amplification.json").read_text())
    rows = _table_rows(page, "model", "quantization", "mean amplification")
    assert [r[1] for r in rows] == ["FP32", row[2]]
    fp_layers = next(iter(amp["models"].values()))["layers"]
    assert rows[0][2] == f"{np.mean(list(fp_layers.values())):.3f}"
    # the amplification file given directly is read too
    assert build_report([tmp_path / "runs/amp/amplification.json"], tmp_path / "a.html")["runs"] \
        == ["amplification"]
