import csv
import dataclasses
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from robustq.certify import Smooth
from robustq.certify.reuse import joined_rows
from robustq.certify.run import (
    CACHE,
    TSV,
    CertifyConfig,
    certify_dataset,
    irs_certify_dataset,
    read_rows,
)
from robustq.cli.main import app
from robustq.models import ModelCard, get_model, save_checkpoint
from robustq.utils.errors import RobustqError
from robustq.utils.io import file_sha256
from tests.conftest import write_image_folder

CFG = dict(sigma=0.25, n0=10, n=200, alpha=0.01, batch_size=100, chunk=50, skip=3,
           max_images=7)


def model2():
    torch.manual_seed(0)
    return get_model("small_cnn", 2, 3).eval()


def rows(path):
    with open(path) as f:
        return [{k: v for k, v in r.items() if k != "time"}
                for r in csv.DictReader(f, delimiter="\t")]


def test_certify_dataset_streams_rows_and_resumes_identically(tmp_path, tiny_rgb_dataset):
    cfg = CertifyConfig(**CFG)
    full = certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path / "a", cache=True)
    assert full["images"] == 7 and len(rows(tmp_path / "a" / TSV)) == 7
    assert (tmp_path / "a" / CACHE).stat().st_size == 7 * 200 * 2

    def die(done, total, summary):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path / "b", cache=True, progress=die)
    with open(tmp_path / "b" / TSV, "a") as f:
        f.write("9\t1\t0\t0.1")                      # a line cut off by the kill
    again = certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path / "b", cache=True)
    assert rows(tmp_path / "a" / TSV) == rows(tmp_path / "b" / TSV)
    assert (tmp_path / "a" / CACHE).read_bytes() == (tmp_path / "b" / CACHE).read_bytes()
    assert {k: v for k, v in again.items() if "time" not in k} == \
        {k: v for k, v in full.items() if "time" not in k}
    # the wall time covers the killed call's images too, and a finished run called again keeps
    # (at least) its recorded time instead of reporting the no-op call's
    per_image = sum(float(r["time"]) for r in csv.DictReader(open(tmp_path / "b" / TSV),
                                                              delimiter="\t"))
    assert again["wall_time_s"] >= per_image - 0.01
    noop = certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path / "a", cache=True)
    assert noop["wall_time_s"] >= noop["certify_time_s"] - 0.01 > 0


def test_irs_against_the_same_model_transfers_with_zero_disagreement(tmp_path, tiny_rgb_dataset):
    cfg = CertifyConfig(**CFG)
    certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path / "f", cache=True)
    irs_cfg = CertifyConfig(**CFG, n_p=100, gamma=1.0)
    irs_certify_dataset(model2(), tiny_rgb_dataset, irs_cfg, tmp_path / "f", tmp_path / "p")
    for f_row, p_row in zip(rows(tmp_path / "f" / TSV), rows(tmp_path / "p" / TSV), strict=True):
        if int(f_row["predict"]) >= 0:
            assert p_row["disagreements"] == "0"
            assert float(p_row["radius"]) <= float(f_row["radius"])


@pytest.mark.parametrize("change,message", [
    (dict(sigma=0.5), "sigma 0.25"), (dict(skip=2), "image list"), (dict(chunk=25), "chunk"),
])
def test_cache_mismatch_is_refused(tmp_path, tiny_rgb_dataset, change, message):
    certify_dataset(model2(), tiny_rgb_dataset, CertifyConfig(**CFG), tmp_path / "f", cache=True)
    with pytest.raises(RobustqError, match=message):
        irs_certify_dataset(model2(), tiny_rgb_dataset, CertifyConfig(**{**CFG, **change}, n_p=50),
                            tmp_path / "f", tmp_path / "p")


def test_cache_from_another_dataset_is_refused(tmp_path, tiny_rgb_dataset):
    certify_dataset(model2(), tiny_rgb_dataset, CertifyConfig(**CFG), tmp_path / "f", cache=True)
    other = tiny_rgb_dataset.subset(range(30))
    other = other.__class__(other.images, other.labels, other.classes, "elsewhere", "test")
    with pytest.raises(RobustqError, match="the cache was made with data tiny"):
        irs_certify_dataset(model2(), other, CertifyConfig(**CFG, n_p=50), tmp_path / "f",
                            tmp_path / "p")


def test_runs_at_offsets_certify_exactly_the_images_of_one_run(tmp_path, tiny_rgb_dataset):
    whole = dict(CFG, skip=2, max_images=6)              # images 0, 2, ..., 10
    certify_dataset(model2(), tiny_rgb_dataset, CertifyConfig(**whole), tmp_path / "one")
    for offset in (4, 0, 2):                             # 4 10; 0 6; 2 8
        cfg = CertifyConfig(**dict(whole, skip=6, max_images=2, offset=offset))
        assert cfg.indices(len(tiny_rgb_dataset)) == [offset, offset + 6]
        certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path / f"o{offset}")
    joined = joined_rows([tmp_path / f"o{k}" for k in (4, 0, 2)])
    assert [{k: v for k, v in r.items() if k != "time"} for r in joined] == \
        rows(tmp_path / "one" / TSV)
    with pytest.raises(RobustqError, match="certified twice"):
        joined_rows([tmp_path / "o0", tmp_path / "one"])
    with pytest.raises(RobustqError, match="o9: not a certification run"):
        joined_rows([tmp_path / "o0", tmp_path / "o9"])       # a part not (yet) certified
    other = CertifyConfig(**dict(whole, skip=6, max_images=2, offset=2, sigma=0.5))
    certify_dataset(model2(), tiny_rgb_dataset, other, tmp_path / "s05")
    with pytest.raises(RobustqError, match="another sigma"):
        joined_rows([tmp_path / "o0", tmp_path / "s05"])


def test_a_run_recorded_before_offsets_existed_resumes(tmp_path, tiny_rgb_dataset):
    cfg = CertifyConfig(**CFG)
    certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path / "a")
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    del run["config"]["offset"]
    (tmp_path / "a" / "run.json").write_text(json.dumps(run))
    again = certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path / "a")
    assert again["images"] == 7
    with pytest.raises(RobustqError, match="other settings"):
        certify_dataset(model2(), tiny_rgb_dataset, dataclasses.replace(cfg, offset=1),
                        tmp_path / "a")


@pytest.mark.parametrize("bad", [dict(sigma=0), dict(sigma=-1), dict(n0=0), dict(n=0),
                                 dict(alpha=0), dict(alpha=1), dict(batch_size=0),
                                 dict(alpha_zeta=1.5), dict(offset=-1)])
def test_bad_certify_config(bad):
    with pytest.raises(RobustqError):
        CertifyConfig(**{**CFG, **bad})


def test_model_output_size_must_match_classes():
    smooth = Smooth(get_model("small_cnn", 3, 3).eval(), num_classes=2, sigma=0.25)
    with pytest.raises(RobustqError, match="outputs \\(3,\\) scores per image but the data has 2"):
        smooth.certify(torch.rand(3, 8, 8), 5, 10, 0.1)


def test_predict_abstains_when_classes_tie_and_answers_when_clear():
    from tests.certify.synthetic import ThresholdClassifier

    x = torch.zeros(1, 1, 2)
    clear = Smooth(ThresholdClassifier(0.9, 0.5), 2, 0.5, batch_size=1000)
    tie = Smooth(ThresholdClassifier(0.5, 0.5), 2, 0.5, batch_size=1000)
    assert clear.predict(x, 1000, 0.001) == 0
    assert sum(tie.predict(x, 1000, 0.001, seed=s) == -1 for s in range(20)) >= 18


def test_cli_certify_and_incremental(tmp_path):
    write_image_folder(tmp_path / "data", per_class=6)
    card = ModelCard("small_cnn", 2, 3, (0.5,) * 3, (0.25,) * 3, ("cat", "dog"), (32, 32))
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.safetensors", card.build(), card, {"sigma": 0.25})
    run = CliRunner().invoke
    common = ["--data", str(tmp_path / "data"), "--n0", "10", "--n", "100", "--skip", "2",
              "--batch", "100", "--chunk", "50"]
    res = run(app, ["certify", str(tmp_path / "m.safetensors"), "--out", str(tmp_path / "c"),
                    "--cache", *common])
    assert res.exit_code == 0, res.output
    assert len(rows(tmp_path / "c" / TSV)) == 6
    res = run(app, ["certify", str(tmp_path / "m.safetensors"), "--out", str(tmp_path / "i"),
                    "--incremental", str(tmp_path / "c"), "--approx", "prune:0.3", "--n-p", "50",
                    *common])
    assert res.exit_code == 0, res.output
    for bad, msg in ((["--sigma", "0"], "sigma must lie in (0, 4]"), (["--alpha", "1.5"], "alpha must"),
                     (["--batch", "0"], "batch size"), (["--n0", "0"], "n0 and n"),
                     (["--sigma", "0.5", "--incremental", str(tmp_path / "c"), "--n-p", "5"],
                      "cache was made with sigma")):
        res = run(app, ["certify", str(tmp_path / "m.safetensors"), "--out",
                        str(tmp_path / "x"), *common, *bad])
        assert res.exit_code == 2 and msg in res.output, (bad, res.output)


def test_metrics_on_hand_made_results():
    from robustq.certify import summarize

    s = summarize([0, 1, -1, 2], [0, 1, 1, 1], [0.3, 0.8, 0.0, 0.9], at=(0.0, 0.5))
    assert s["acr"] == pytest.approx((0.3 + 0.8) / 4)
    assert s["certified_accuracy"] == {"0.0": 0.5, "0.5": 0.25}
    assert s["abstention_rate"] == 0.25 and s["smoothed_accuracy"] == 0.5
    assert np.isclose(s["acr"], 0.275)


def test_compare_runs_pairs_images_and_refuses_different_ones(tmp_path, tiny_rgb_dataset):
    from robustq.certify.run import compare_runs, summarize_rows

    cfg = CertifyConfig(**CFG)
    certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path / "a")
    torch.manual_seed(1)
    other = get_model("small_cnn", 2, 3).eval()
    certify_dataset(other, tiny_rgb_dataset, cfg, tmp_path / "b")
    d = compare_runs(tmp_path / "a", tmp_path / "b")
    sa = summarize_rows(read_rows(tmp_path / "a"), (0.5,))
    sb = summarize_rows(read_rows(tmp_path / "b"), (0.5,))
    assert d["acr"].mean == pytest.approx(sa["acr"] - sb["acr"])
    assert d["smoothed_accuracy"].mean == pytest.approx(
        sa["smoothed_accuracy"] - sb["smoothed_accuracy"])
    assert d["acr"].images == 7 and d["acr"].low <= d["acr"].mean <= d["acr"].high
    same = compare_runs(tmp_path / "a", tmp_path / "a")["acr"]
    assert (same.mean, same.significant) == (0.0, False)
    certify_dataset(model2(), tiny_rgb_dataset, CertifyConfig(**CFG | dict(skip=2)),
                    tmp_path / "c")
    with pytest.raises(RobustqError, match="different images"):
        compare_runs(tmp_path / "a", tmp_path / "c")
    partial = compare_runs(tmp_path / "a", tmp_path / "c", common=True)["acr"]
    shared = {r["idx"] for r in read_rows(tmp_path / "a")} & \
        {r["idx"] for r in read_rows(tmp_path / "c")}
    assert partial.images == len(shared) >= 2


def test_resume_needs_the_same_classifier_not_the_same_engine(tmp_path, tiny_rgb_dataset):
    cfg = CertifyConfig(**{**CFG, "max_images": 2})
    legacy = {"checkpoint": "/m.safetensors", "engine": "torch (frozen, traced/compiled)"}
    certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path, model_info=legacy)
    now = {"checkpoint": "/m.safetensors", "engine": "compile", "classifier": "checkpoint"}
    more = dataclasses.replace(cfg, max_images=3)       # a longer image list is another config
    again = certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path, model_info=now)
    assert again["images"] == 2
    for other in ({**now, "engine": "bf16", "classifier": "bf16"},
                  {**now, "checkpoint": "/other.safetensors"}):
        with pytest.raises(RobustqError, match="another model"):
            certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path, model_info=other)
    with pytest.raises(RobustqError, match="other settings"):
        certify_dataset(model2(), tiny_rgb_dataset, more, tmp_path, model_info=now)


def test_noise_on_an_explicit_cpu_device_is_the_default_noise(tiny_rgb_dataset):
    xs, _ = tiny_rgb_dataset.tensors(np.arange(3))
    a = Smooth(model2(), 2, 0.25, 100, 50).sample(xs, 120, [1, 2, 3], 0, record=True)
    b = Smooth(model2(), 2, 0.25, 100, 50, device="cpu").sample(xs, 120, [1, 2, 3], 0,
                                                                record=True)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_irs_refuses_a_cache_drawn_on_another_device(tmp_path, tiny_rgb_dataset):
    import json

    cfg = CertifyConfig(**{**CFG, "max_images": 2, "n_p": 100})
    certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path / "f", cache=True,
                    model_info={"device": "cuda:0"})       # as if certified on a GPU
    with pytest.raises(RobustqError, match="drawn on cuda"):
        irs_certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path / "f", tmp_path / "p")
    run = json.loads((tmp_path / "f" / "run.json").read_text())
    run["model"] = {}                                      # a cache recorded before --device
    (tmp_path / "f" / "run.json").write_text(json.dumps(run))
    assert irs_certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path / "f",
                               tmp_path / "p")["images"] == 2


def test_a_run_is_reused_and_resumed_from_another_working_directory(tmp_path, monkeypatch):
    import json

    from robustq.certify.run import reuse_certification
    from robustq.data import load_dataset

    (tmp_path / "a" / "work").mkdir(parents=True)
    write_image_folder(tmp_path / "a" / "data", classes=("x", "y"), per_class=4)
    model = model2()
    save_checkpoint(tmp_path / "a" / "m.safetensors", model,
                    ModelCard("small_cnn", 2, 3, (0.5,) * 3, (0.25,) * 3, ("x", "y"), (32, 32)))
    cfg = CertifyConfig(**{**CFG, "max_images": 3})
    monkeypatch.chdir(tmp_path / "a")
    ds = load_dataset("data", "test")                     # a relative source, as typed
    certify_dataset(model, ds, cfg, "run", model_info={
        "checkpoint": str((tmp_path / "a" / "m.safetensors").resolve())})
    recorded = json.loads((tmp_path / "a" / "run" / "run.json").read_text())["data"]["source"]
    assert recorded == str((tmp_path / "a" / "data").resolve())
    monkeypatch.chdir(tmp_path / "a" / "work")            # another directory, other spellings
    other = load_dataset("../data", "test")
    assert reuse_certification(tmp_path / "a" / "run", other, cfg, "../m.safetensors")["images"] == 3
    again = certify_dataset(model, other, cfg, "../run", model_info={
        "checkpoint": str((tmp_path / "a" / "m.safetensors").resolve())})
    assert again["images"] == 3


def test_a_run_resumes_after_its_checkpoint_moved_not_after_it_changed(tmp_path,
                                                                      tiny_rgb_dataset):
    cfg = CertifyConfig(**{**CFG, "max_images": 2})
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    a.write_bytes(b"weights")
    old = {"checkpoint": str(a), "engine": "compile", "classifier": "checkpoint"}  # no hash
    certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path / "run", model_info=old)
    b.write_bytes(b"weights")                        # the same file, moved
    moved = {**old, "checkpoint": str(b), "checkpoint_sha256": file_sha256(b)}
    assert certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path / "run",
                           model_info=moved)["images"] == 2
    b.write_bytes(b"other weights")                  # another file at the path
    changed = {**moved, "checkpoint_sha256": file_sha256(b)}
    with pytest.raises(RobustqError, match="another model"):
        certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path / "run", model_info=changed)


def test_a_finished_run_is_read_back_untouched_while_another_process_holds_it(tmp_path,
                                                                              tiny_rgb_dataset):
    from robustq.utils.runlock import release_run_dir
    from tests.utils.test_runlock import held_elsewhere

    cfg = CertifyConfig(**CFG)
    full = certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path / "f", cache=True)
    irs = irs_certify_dataset(model2(), tiny_rgb_dataset, dataclasses.replace(cfg, n_p=100),
                              tmp_path / "f", tmp_path / "p")
    for d in ("f", "p"):
        release_run_dir(tmp_path / d)                # as this process ending would
    files = {f: f.read_bytes() for f in tmp_path.glob("*/*")}
    with held_elsewhere(tmp_path / "f"), held_elsewhere(tmp_path / "p"):
        again = certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path / "f", cache=True)
        irs_again = irs_certify_dataset(model2(), tiny_rgb_dataset,
                                        dataclasses.replace(cfg, n_p=100), tmp_path / "f",
                                        tmp_path / "p")
        with pytest.raises(RobustqError, match="another robustq process"):
            # not the finished run (another seed): it must be claimed, and it is held
            certify_dataset(model2(), tiny_rgb_dataset, dataclasses.replace(cfg, seed=1),
                            tmp_path / "f")
    assert again == full and irs_again == irs        # wall time as recorded, not this call's
    assert {f: f.read_bytes() for f in tmp_path.glob("*/*")} == files
    (tmp_path / "f" / "summary.json").write_text("{")  # a damaged summary: finished again
    assert certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path / "f", cache=True)["acr"] \
        == full["acr"]
