import json

import numpy as np
import pytest
from typer.testing import CliRunner

from robustq.bench.runner import BenchConfig, BenchRun
from robustq.bench.tables import summarize_run
from robustq.cli.main import app
from robustq.utils.errors import RobustqError
from robustq.utils.progress import CountingProgress, Progress
from tests.conftest import write_image_folder

runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    write_image_folder(root / "data", classes=("a", "b", "c", "d"), per_class=3, fmt="jpg")
    res = runner.invoke(app, ["train", "--data", str(root / "data"), "--arch", "small_cnn",
                              "--epochs", "2", "--batch-size", "4", "--out", str(root / "fp")])
    assert res.exit_code == 0, res.output
    return root


def config(root, **kw):
    base = dict(checkpoint=str(root / "fp" / "model.safetensors"), data=str(root / "data"),
                methods=("minmax",), bits=(4,), images=8, attack_images=6, autoattack_images=3,
                linf_eps=(2 / 255,), l2_eps=(0.25,), autoattack_eps=(8 / 255,),
                corruptions=("gaussian_noise", "fog"), severities=(1, 2))
    return BenchConfig(**(base | kw))


def test_grid_runs_resumes_and_summarizes(setup, tmp_path):
    cfg = config(setup)
    events = CountingProgress()
    BenchRun(cfg, tmp_path / "full").run(events)
    units = len((tmp_path / "full" / "units.jsonl").read_text().splitlines())
    ups = [e for e in events.events if e[0] == "update" and "images): " not in e[1]
           and ": quantizing" not in e[1]]
    # a quantized model is named while it is made, before its first unit
    assert "minmax_w4a4: quantizing (post-training, min-max calibration)" in events.labels()
    # each unit is named while it runs (done still counts the units before it), then counted
    assert len(ups) == 2 * units
    # AutoAttack also names the stage of its cascade in progress
    stages = [e[1] for e in events.events if "images): " in e[1]]
    assert stages and all(s.startswith("minmax_w4a4 adversarial autoattack") or
                          s.startswith("fp adversarial autoattack") for s in stages)
    assert any(s.endswith("apgd-ce") for s in stages), stages
    for running, finished in zip(ups[::2], ups[1::2], strict=True):
        assert "images)" in running[1] and finished[1] == running[1]
        assert finished[2] == running[2] + 1
    full = summarize_run(tmp_path / "full")
    assert [m["model"] for m in full["models"]] == ["fp", "minmax_w4a4"]
    fp, q = full["models"]
    assert q["mce"] is not None and fp["mce"] == pytest.approx(1.0)
    assert len(q["systematic_accuracy"]) == 14 and 0 <= q["acc_s"] <= 1
    assert set(q["ar"]) == {"fgsm-linf-2/255", "pgd-linf-2/255", "fgsm-l2-0.25", "pgd-l2-0.25",
                            "autoattack-linf-8/255"}
    assert q["clean_accuracy"] > 0      # some clean-correct images, so AR and WCAR are defined
    assert q["wcar"] <= min(q["ar"].values()) + 1e-9
    assert (tmp_path / "full" / "results.csv").read_text().startswith("model,method,bits")

    # killed after 5 units, resumed: the same per-image results as the uninterrupted run
    class Kill(Exception):
        pass

    class KillAfterFive(Progress):
        def on_update(self, phase):
            if phase.done == 5:
                raise Kill

    with pytest.raises(Kill):
        BenchRun(cfg, tmp_path / "resumed").run(KillAfterFive())
    lines = len((tmp_path / "resumed" / "units.jsonl").read_text().splitlines())
    BenchRun(cfg, tmp_path / "resumed").run()
    units = (tmp_path / "resumed" / "units.jsonl").read_text().splitlines()
    assert lines == 5 and len(units) == len((tmp_path / "full" / "units.jsonl").read_text()
                                            .splitlines())
    for f in (tmp_path / "full" / "cells").rglob("*.npy"):
        np.testing.assert_array_equal(np.load(f), np.load(tmp_path / "resumed" / "cells" /
                                                          f.relative_to(tmp_path / "full" / "cells")))
    # a finished run does no work
    BenchRun(cfg, tmp_path / "resumed").run()
    assert len((tmp_path / "resumed" / "units.jsonl").read_text().splitlines()) == len(units)


def test_attack_subsets_are_nested_and_spread():
    cfg = BenchConfig(checkpoint="c", data="d", images=1000, attack_images=200,
                      autoattack_images=20)
    pos, aa = cfg.attack_positions(), cfg.autoattack_positions()
    assert len(pos) == 200 and len(aa) == 20 and set(aa) <= set(pos)
    assert pos.max() > 900 and aa.max() > 800        # spread over the images, not a prefix
    with pytest.raises(RobustqError, match="autoattack images <= attack images"):
        BenchConfig(checkpoint="c", data="d", images=100, attack_images=10, autoattack_images=20)


def test_other_settings_in_the_same_directory_are_refused(setup, tmp_path):
    BenchRun(config(setup, families=("systematic",)), tmp_path / "b")
    with pytest.raises(RobustqError, match="other settings"):
        BenchRun(config(setup, families=("natural",)), tmp_path / "b")


def test_config_round_trips_through_json(setup):
    cfg = config(setup)
    assert BenchConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg
    with pytest.raises(RobustqError, match="unknown bench option"):
        BenchConfig.from_json(cfg.to_json() | {"colour": 1})


@pytest.mark.parametrize("args,message", [
    (["--methods", "xnor"], "unknown methods"),
    (["--bits", "9"], "bit-widths"),
    (["--families", "weather"], "families"),
    (["--corruptions", "rain"], "unknown corruptions"),
    (["--linf-eps", "abc"], "not a finite number"),
])
def test_cli_bad_input(setup, tmp_path, args, message):
    res = runner.invoke(app, ["bench", str(setup / "fp" / "model.safetensors"), "--data",
                              str(setup / "data"), "--out", str(tmp_path / "o"), *args])
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output


def test_cli_runs_a_small_grid(setup, tmp_path):
    res = runner.invoke(app, ["bench", str(setup / "fp" / "model.safetensors"), "--data",
                              str(setup / "data"), "--out", str(tmp_path / "o"), "--methods",
                              "minmax", "--bits", "8", "--families", "natural,systematic",
                              "--images", "6", "--corruptions", "contrast"])
    assert res.exit_code == 0, res.output
    assert "minmax_w8a8" in res.output and (tmp_path / "o" / "results.json").is_file()


def test_a_grid_on_two_workers_writes_the_cells_of_a_one_process_run(setup, tmp_path):
    from robustq.utils.parallel import PoolExecutor

    cfg = config(setup, corruptions=("fog",), severities=(2,))
    BenchRun(cfg, tmp_path / "one").run()
    BenchRun(cfg, tmp_path / "two").run(executor=PoolExecutor(2, threads=1))

    def cells(root):
        return {p.relative_to(root): (np.load(p).tolist() if p.suffix == ".npy" else
                                      json.loads(p.read_text()))
                for p in sorted((root / "cells").rglob("*.*"))}

    def log(root):
        return [{k: v for k, v in json.loads(ln).items() if k not in ("seconds", "time")}
                for ln in (root / "units.jsonl").read_text().splitlines()]

    one = cells(tmp_path / "one")
    assert any(p.suffix == ".json" for p in one)          # AutoAttack's details beside its cell
    assert one == cells(tmp_path / "two") and log(tmp_path / "one") == log(tmp_path / "two")
    timing = ("throughput_images_per_s", "seconds_per_family")
    untimed = [{k: v for k, v in summarize_run(tmp_path / r).items() if k not in timing}
               for r in ("one", "two")]
    for u in untimed:                  # when each summary was made (a second apart now and then)
        del u["provenance"]["time"]
    assert untimed[0] == untimed[1]


def test_the_224_pixel_path_runs_end_to_end(tmp_path):
    # ImageNet-sized inputs take the other protocol: ImageNet-C's constants (imagecorruptions)
    # and resize-256 / center-crop-224 pipelines. Synthetic images: this checks the path, not
    # its numbers (no real 224-pixel labelled data is available offline).
    write_image_folder(tmp_path / "data", classes=("a", "b"), per_class=2, fmt="jpg", size=224)
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "data"), "--arch", "small_cnn",
                              "--epochs", "1", "--batch-size", "4", "--out", str(tmp_path / "fp")])
    assert res.exit_code == 0, res.output
    cfg = config(tmp_path, images=4, attack_images=2, autoattack_images=0, severities=(1,),
                 families=("natural", "systematic"))
    run = BenchRun(cfg, tmp_path / "grid")
    assert run.profile == "224"
    run.run(Progress())
    assert sorted(p.name for p in (tmp_path / "grid" / "corrupted" / "224").iterdir()) == [
        "fog-s1.npy", "gaussian_noise-s1.npy"]
    fp, q = summarize_run(tmp_path / "grid")["models"]
    assert len(fp["systematic_accuracy"]) == len(q["systematic_accuracy"]) == 14
    assert set(fp["corruption_accuracy"]) == {"gaussian_noise", "fog"}


def test_the_grid_takes_every_quantization_method_of_issue_20(setup):
    cfg = config(setup, methods=("lsq_mse", "dorefa", "pact"), bits=(2, 4))
    assert cfg.model_keys()[:3] == ["fp", "lsq_mse_w2a2", "lsq_mse_w4a4"]
    assert len(cfg.model_keys()) == 7


def test_a_killed_autoattack_unit_resumes_at_its_first_missing_chunk(setup, tmp_path, monkeypatch):
    from robustq.bench import runner as runner_module

    cfg = config(setup, families=("adversarial",), autoattack_images=3,
                 autoattack_chunk=2)                      # 3 images: chunks of 2 and 1
    BenchRun(cfg, tmp_path / "whole").run()
    label = "autoattack-linf-8/255"
    whole = BenchRun(cfg, tmp_path / "whole")
    assert not whole.parts_dir("fp", label).exists()          # parts go once the cell is written

    calls, real = [], runner_module.attack_correct
    kill = {"armed": True}

    class Kill(Exception):
        pass

    def kill_at_second_chunk(model, attack, x, y, batch_size):
        if attack.label.startswith("autoattack"):
            calls.append(len(x))
            if len(calls) == 2 and kill["armed"]:
                raise Kill
        return real(model, attack, x, y, batch_size)

    monkeypatch.setattr(runner_module, "attack_correct", kill_at_second_chunk)
    with pytest.raises(Kill):
        BenchRun(cfg, tmp_path / "killed").run()
    killed = BenchRun(cfg, tmp_path / "killed")
    parts = killed.parts_dir("fp", label)
    assert sorted(p.name for p in parts.iterdir()) == ["0.json", "0.npy"]
    assert not killed.unit_path(killed.unit("fp", label)).exists()
    calls.clear()
    kill["armed"] = False
    killed.run()
    assert calls == [1, 2, 1]       # fp's last chunk, then the quantized model's two
    for key in ("fp", "minmax_w4a4"):
        a, b = (np.load(r.unit_path(r.unit(key, label))) for r in (whole, killed))
        np.testing.assert_array_equal(a, b)
        details = json.loads(killed.unit_path(killed.unit(key, label)).with_suffix(".json")
                             .read_text())
        assert details["clean_correct"] <= 3 and "seconds" not in details
    assert not parts.exists()
    # the resumed unit's log line counts the compute of the chunk made before the kill too
    seconds = [json.loads(ln)["seconds"] for ln in
               (tmp_path / "killed" / "units.jsonl").read_text().splitlines()
               if json.loads(ln)["unit"] == label]
    assert len(seconds) == 2 and all(s > 0 for s in seconds)


def test_a_run_recorded_before_autoattack_chunks_resumes_with_its_own_chunk_size(setup, tmp_path):
    # such a run made one AutoAttack call per batch_size images, i.e. chunks of batch_size
    cfg = config(setup, families=("natural",), corruptions=("fog",), severities=(1,))
    BenchRun(cfg, tmp_path / "old")
    record = json.loads((tmp_path / "old" / "bench.json").read_text())
    del record["config"]["autoattack_chunk"]
    (tmp_path / "old" / "bench.json").write_text(json.dumps(record))
    assert BenchConfig.from_json(record["config"]).autoattack_chunk == cfg.batch_size
    BenchRun(config(setup, families=("natural",), corruptions=("fog",), severities=(1,),
                    autoattack_chunk=cfg.batch_size), tmp_path / "old")
    with pytest.raises(RobustqError, match="autoattack_chunk"):
        BenchRun(cfg, tmp_path / "old")
