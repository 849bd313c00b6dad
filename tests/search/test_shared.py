import json
from itertools import pairwise

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from robustq.cli.main import app
from robustq.quant.checkpoint import load_model
from robustq.quant.policy import Policy
from robustq.quant.quantize import get_policy
from robustq.search.env import BitOpsBudget, LayerTable
from robustq.search.search import Search, read_episodes
from robustq.search.shared import (
    RandomPolicies,
    SharedJob,
    load_shared,
    rebit,
    reestimate_bn,
    run_shared,
    sample_bits,
)
from robustq.utils.errors import RobustqError
from tests.search.test_search import config, fp  # noqa: F401  (the module-scoped FP model)

runner = CliRunner()


@pytest.fixture(scope="module")
def shared(fp, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("shared") / "run"
    job = SharedJob(checkpoint=str(fp / "fp" / "model.safetensors"), data=str(fp / "data"),
                    budgets=(3.0, 8.0), epochs=2, batch_size=8, eval_images=8)
    run_shared(job, out)
    return out


def table_of(root):
    model, _ = load_model(root / "fp" / "model.safetensors")
    return model, LayerTable(model, (3, 32, 32))


def test_sampled_policies_meet_their_budget_and_repeat_by_seed(fp):  # noqa: F811
    _, table = table_of(fp)
    draws = [sample_bits(table, np.random.default_rng((0, k)), (3.0, 8.0), 2, 8, 0.25)
             for k in range(40)]
    again = [sample_bits(table, np.random.default_rng((0, k)), (3.0, 8.0), 2, 8, 0.25)
             for k in range(40)]
    assert all(np.array_equal(w, w2) and np.array_equal(a, a2)
               for (w, a), (w2, a2) in zip(draws, again, strict=True))
    assert all(table.bitops_percent(w, a) <= 8.0 + 1e-9 for w, a in draws)
    assert all(w.min() >= 2 and w.max() <= 8 and a.min() >= 2 and a.max() <= 8 for w, a in draws)
    assert len({(tuple(w), tuple(a)) for w, a in draws}) > 30          # diverse
    with pytest.raises(RobustqError, match="cannot be met"):
        BitOpsBudget(0.01).check(table)


def test_shared_model_trains_records_and_loads(fp, shared):  # noqa: F811
    run = json.loads((shared / "run.json").read_text())
    assert run["kind"] == "shared" and run["status"] == "complete"
    assert run["config"]["budgets"] == [3.0, 8.0]
    fp_model, _ = load_model(fp / "fp" / "model.safetensors")
    model = load_shared(shared / "model.safetensors", fp_model)
    assert set(get_policy(model).values()) == {get_policy(model)["conv1"]}   # uniform 4/4
    assert get_policy(model)["conv1"].w == 4
    steps = [m.steps for m in model.modules() if hasattr(m, "steps")]
    # every width kept its own step, and training moved the widths it visited
    assert steps and all(bool(torch.all(s[2:] > 0)) for s in steps)
    assert len({round(float(s), 6) for s in steps[0][2:]}) == 7
    with pytest.raises(RobustqError, match="not a weight-sharing model"):
        load_shared(fp / "fp" / "model.safetensors", fp_model)


def test_training_draws_a_policy_per_step_from_its_counter(fp):  # noqa: F811
    model, table = table_of(fp)
    job = SharedJob(checkpoint="x", budgets=(3.0, 8.0))
    ref = table.policy(np.full(len(table), 4), np.full(len(table), 4))
    from robustq.quant.quantize import quantize

    q = quantize(model, ref, "lsq_shared", calibration=torch.rand(4, 3, 32, 32))
    net = RandomPolicies(q, table, ref, seed=3, draw=job.draw)
    x = torch.rand(2, 3, 32, 32)
    seen = []
    net.train()
    for _ in range(3):
        net(x)
        seen.append(get_policy(q))
    assert int(net.steps_drawn) == 3 and seen[0] != seen[1]
    expect = table.policy(*job.draw(table, np.random.default_rng((3, 1))))
    assert seen[1] == expect
    net.eval()
    net(x)
    assert get_policy(q) == ref


def test_bn_reestimation_is_the_batches_average_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    batches = [torch.randn(8, 3, 6, 6) * 2 + 1 for _ in range(3)]
    model.eval()
    reestimate_bn(model, batches)
    feats = [model[0](x) for x in batches]
    mean = torch.stack([f.mean((0, 2, 3)) for f in feats]).mean(0)
    var = torch.stack([f.var((0, 2, 3), unbiased=True) for f in feats]).mean(0)
    bn = model[1]
    assert torch.allclose(bn.running_mean, mean, atol=1e-5)
    assert torch.allclose(bn.running_var, var, atol=1e-4)
    assert not model.training and bn.momentum == 0.1


def test_rebit_depends_on_the_policy_only(fp, shared):  # noqa: F811
    fp_model, _ = load_model(fp / "fp" / "model.safetensors")
    _, table = table_of(fp)
    p = table.policy(np.full(len(table), 3), np.full(len(table), 5))
    other = table.policy(np.full(len(table), 8), np.full(len(table), 2))
    batches = [torch.rand(8, 3, 32, 32)]
    x = torch.rand(5, 3, 32, 32)
    fresh = rebit(load_shared(shared / "model.safetensors", fp_model), p, batches)
    used = load_shared(shared / "model.safetensors", fp_model)
    rebit(used, other, batches)
    rebit(used, p, batches)
    with torch.no_grad():
        assert torch.equal(fresh(x), used(x))
        assert not torch.equal(fresh(x), rebit(used, other, batches)(x))


def test_search_on_the_shared_model_resumes_and_skips_finetuning(fp, shared, tmp_path):  # noqa: F811
    cfg = config(fp, strategy="arq", shared=str(shared / "model.safetensors"), bn_images=8,
                 budget=8.0)
    Search(cfg, tmp_path / "a").run()
    lines = read_episodes(tmp_path / "a")
    assert len(lines) == 5 and all(ln["bitops_percent"] <= 8.0 + 1e-9 for ln in lines)
    assert len({json.dumps(ln["policy"]) for ln in lines}) > 1
    Search(cfg, tmp_path / "b").run()
    assert [ln["reward"] for ln in read_episodes(tmp_path / "b")] == [ln["reward"] for ln in lines]
    with pytest.raises(RobustqError, match="not a weight-sharing model"):
        Search(config(fp, shared=str(fp / "fp" / "model.safetensors")), tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_shared_cli_refuses_bad_input_before_writing(fp, tmp_path):  # noqa: F811
    res = runner.invoke(app, ["shared", str(fp / "fp" / "model.safetensors"), "--data",
                              str(fp / "data"), "--budget-low", "9", "--budget-high", "3",
                              "--out", str(tmp_path / "s")])
    assert res.exit_code == 2 and "budgets must be" in res.output
    assert not (tmp_path / "s").exists()
    res = runner.invoke(app, ["search", str(fp / "fp" / "model.safetensors"), "--data",
                              str(fp / "data"), "--budgets", "1.5,x", "--out", str(tmp_path / "q")])
    assert res.exit_code == 2 and "--budgets must be comma-separated" in res.output
    assert not (tmp_path / "q").exists()


def test_shared_training_takes_the_deploy_recipes_consistency_loss(fp, tmp_path):  # noqa: F811
    job = SharedJob(checkpoint=str(fp / "fp" / "model.safetensors"), data=str(fp / "data"),
                    budgets=(3.0, 8.0), epochs=1, batch_size=8, eval_images=8, consistency=3.0,
                    consistency_copies=3)
    assert SharedJob.from_json(json.loads(json.dumps(job.to_json()))) == job
    card = type("Card", (), {"arch": "small_cnn", "in_channels": 3})()
    cfg = job.train_config(card, 0.25)
    assert (cfg.consistency, cfg.copies, cfg.consistency_entropy) == (3.0, 3, 0.5)
    old = {k: v for k, v in job.to_json().items()
           if not k.startswith("consistency") and k != "quant_kernels"}
    assert SharedJob.from_json(old).consistency == 0.0      # a run recorded before the option
    run_shared(job, tmp_path / "cr")
    log = [json.loads(ln) for ln in (tmp_path / "cr" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and np.isfinite(log[0]["train_loss"])
    run = json.loads((tmp_path / "cr" / "run.json").read_text())
    assert run["config"]["consistency"] == 3.0 and run["status"] == "complete"


@pytest.mark.parametrize("flags, message", [
    (["--consistency", "-1"], "--consistency must be >= 0"),
    (["--consistency-copies", "1"], "--consistency-copies must be >= 2"),
    (["--quant-kernels", "fast"], "--quant-kernels must be one of eager, compiled")])
def test_shared_cli_refuses_bad_consistency_and_kernels(fp, tmp_path, flags, message):  # noqa: F811
    res = runner.invoke(app, ["shared", str(fp / "fp" / "model.safetensors"), "--data",
                              str(fp / "data"), "--out", str(tmp_path / "s"), *flags])
    assert res.exit_code == 2 and message in res.output, res.output
    assert "Traceback" not in res.output and not (tmp_path / "s").exists()


def test_adapt_fine_tunes_a_copy_at_the_policy_and_leaves_the_shared_model(fp, shared, tmp_path):  # noqa: F811
    from robustq.data import load_dataset
    from robustq.search.shared import adapt, adapt_config

    fp_model, _ = load_model(fp / "fp" / "model.safetensors")
    model = load_shared(shared / "model.safetensors", fp_model)
    _, table = table_of(fp)
    policy = table.policy(np.full(len(table), 3), np.full(len(table), 5))
    ds = load_dataset(str(fp / "data"), "train")
    q = rebit(model, policy, [torch.rand(8, 3, 32, 32)])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = adapt_config(0.25, batch_size=8)
    a1, a2 = (adapt(q, ds, cfg, fp_model, seed=1) for _ in range(2))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert get_policy(a1) == policy and not a1.training
    w = [k for k in before if k.endswith("conv1.weight")]
    assert not torch.equal(a1.state_dict()[w[0]], before[w[0]])          # it trained
    assert all(torch.equal(a1.state_dict()[k], a2.state_dict()[k]) for k in before)  # seeded
    with pytest.raises(RobustqError, match="teacher"):
        adapt(q, ds, cfg, None)


def test_searches_share_one_fp_cache(fp, tmp_path):  # noqa: F811
    cache = tmp_path / "cache"
    cfg = config(fp, strategy="arq", episodes=2, warmup=1, fp_cache=str(cache))
    Search(cfg, tmp_path / "a").run()
    before = [(cache / f).read_bytes() for f in ("certify.tsv", "irs_cache.bin")]
    Search(cfg, tmp_path / "b").run()
    assert [(cache / f).read_bytes() for f in ("certify.tsv", "irs_cache.bin")] == before
    assert not (tmp_path / "b" / "fp_cache").exists()
    assert ([ln["reward"] for ln in read_episodes(tmp_path / "b")]
            == [ln["reward"] for ln in read_episodes(tmp_path / "a")])
    with pytest.raises(RobustqError):
        Search(config(fp, strategy="arq", episodes=2, warmup=1, n=80, fp_cache=str(cache)),
               tmp_path / "c").run()


def test_a_finished_fp_cache_is_read_while_another_process_holds_it(fp, tmp_path):  # noqa: F811
    import fcntl
    import os

    from robustq.utils.runlock import release_run_dir

    cache = tmp_path / "cache"
    cfg = config(fp, strategy="arq", episodes=1, warmup=1, fp_cache=str(cache))
    first = Search(cfg, tmp_path / "a").context()
    release_run_dir(cache)                          # as the first search's process ending would
    files = {f.name: f.read_bytes() for f in cache.iterdir() if f.is_file()}
    fd = os.open(cache, os.O_RDONLY)                # another process's hold (flock: per open file)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        second = Search(cfg, tmp_path / "b").context()
    finally:
        os.close(fd)
    assert second.fp_acr == first.fp_acr
    assert {f.name: f.read_bytes() for f in cache.iterdir() if f.is_file()} == files


def test_episode_costs_and_reward_precision(fp, shared, tmp_path):  # noqa: F811
    from robustq.certify.metrics import paired_difference
    from robustq.search.diagnostics import episode_costs, episode_radii, reward_precision

    cfg = config(fp, strategy="random", shared=str(shared / "model.safetensors"), bn_images=8,
                 budget=8.0)
    Search(cfg, tmp_path / "r").run()                # random: no IRS, no precision
    assert episode_costs(tmp_path / "r")["episodes"] == 5
    arq = tmp_path / "a"
    Search(config(fp, strategy="arq", shared=str(shared / "model.safetensors"), bn_images=8,
                  budget=8.0), arq).run()
    costs = episode_costs(arq)
    lines = read_episodes(arq)
    assert costs["median_s"]["episode_s"] == pytest.approx(np.median([ln["episode_s"]
                                                                      for ln in lines]))
    assert costs["episodes_per_2h"] == int(7200 // costs["median_s"]["episode_s"])
    rows = reward_precision(arq, image_counts=(2, 4))
    assert [r["images"] for r in rows] == [2, 4] and rows[0]["pairs"] >= 1
    a, b = next((x["episode"], y["episode"]) for x, y in pairwise(lines)
                if x["policy"] != y["policy"])
    d = paired_difference(episode_radii(arq, a)[:4], episode_radii(arq, b)[:4])
    halves = [(d.high - d.low) / 2]
    assert rows[1]["max_half_width"] >= halves[0] - 1e-12
    assert np.mean(episode_radii(arq, a)) == pytest.approx(lines[a]["acr"])
    with pytest.raises(RobustqError, match="image counts"):
        reward_precision(arq, image_counts=(99,))
    from robustq.search.diagnostics import compare_best

    (row,) = compare_best([arq], arq)                 # the best against itself: exactly 0
    top = max(lines, key=lambda ln: ln["reward"])
    assert (row["best_episode"], row["acr"]) == (top["episode"], top["acr"])
    assert row["acr_minus_reference"] == row["low"] == row["high"] == 0
    with pytest.raises(RobustqError, match="ARQ's reward"):
        compare_best([tmp_path / "r"], arq)           # HAQ-rewarded random search


def engine_runs(fp, shared, tmp_path, engines):  # noqa: F811
    """The same three random episodes (ARQ's reward) scored through each engine."""
    runs = {}
    for engine in engines:
        cfg = config(fp, strategy="random", reward="arq", shared=str(shared / "model.safetensors"),
                     bn_images=8, budget=8.0, episodes=3, reward_engine=engine)
        Search(cfg, tmp_path / engine).run()
        runs[engine] = read_episodes(tmp_path / engine)
    return runs


def test_the_onnx_reward_engine_scores_the_deployed_model(fp, shared, tmp_path):  # noqa: F811
    runs = engine_runs(fp, shared, tmp_path, ("eager", "onnx"))
    assert [ln["policy"] for ln in runs["eager"]] == [ln["policy"] for ln in runs["onnx"]]
    # the deployed integer model agrees with the fake-quantized one up to rounding
    assert np.allclose([ln["acr"] for ln in runs["eager"]], [ln["acr"] for ln in runs["onnx"]],
                       atol=0.05)
    assert not list((tmp_path / "onnx").rglob("candidate.*"))          # nothing left behind
    with pytest.raises(RobustqError, match="reward_engine"):
        config(fp, reward_engine="tensorrt")


def test_compiled_reward_engines_score_like_eager(fp, shared, tmp_path):  # noqa: F811
    runs = engine_runs(fp, shared, tmp_path, ("eager", "compile", "bf16"))
    assert [ln["policy"] for ln in runs["eager"]] == [ln["policy"] for ln in runs["compile"]]
    acr = {e: np.array([ln["acr"] for ln in lines]) for e, lines in runs.items()}
    assert acr["eager"].min() > 0                 # something certified: the check has teeth
    # compile: the candidate up to float rounding; bf16: a close classifier
    assert np.allclose(acr["eager"], acr["compile"], atol=0.02)
    assert np.allclose(acr["eager"], acr["bf16"], atol=0.05)


def test_multi_budget_search_keeps_the_best_policy_per_budget(fp, shared, tmp_path):  # noqa: F811
    from robustq.search.diagnostics import pareto_front
    from robustq.search.search import best_per_budget

    cfg = config(fp, strategy="random", reward="arq", shared=str(shared / "model.safetensors"),
                 bn_images=8, budgets=(3.0, 8.0), episodes=6)
    Search(cfg, tmp_path / "m").run()
    lines = read_episodes(tmp_path / "m")
    assert all(ln["bitops_percent"] <= (3.0, 8.0)[ln["episode"] % 2] + 1e-9 for ln in lines)
    best = best_per_budget(lines, (3.0, 8.0))
    for b, line in best.items():
        saved = Policy.load(tmp_path / "m" / f"best_policy_{b:g}.json")
        assert saved == Policy.from_json(line["policy"])
        assert line["reward"] == max(ln["reward"] for ln in lines
                                     if ln["bitops_percent"] <= b + 1e-9)
    front = pareto_front(lines)
    assert front and all(not any(o["acr"] >= f["acr"] and o["accuracy"] >= f["accuracy"]
                                 and o["bitops_percent"] <= f["bitops_percent"]
                                 and (o["acr"], o["accuracy"], o["bitops_percent"])
                                 != (f["acr"], f["accuracy"], f["bitops_percent"])
                                 for o in lines) for f in front)


def test_best_so_far_is_the_running_maximum():
    from robustq.search.diagnostics import best_so_far

    lines = [{"reward": r} for r in (-3.0, -1.0, -2.0, 0.5, 0.1)]
    assert best_so_far(lines, [1, 2, 3, 4, 5]) == [-3.0, -1.0, -1.0, 0.5, 0.5]
    with pytest.raises(RobustqError, match="checkpoints"):
        best_so_far(lines, [6])


def test_pareto_front_by_hand():
    from robustq.search.diagnostics import pareto_front

    def ep(i, acr, acc, bitops):
        return {"policy": {"l": {"w": i, "a": i}}, "acr": acr, "accuracy": acc,
                "bitops_percent": bitops}

    lines = [ep(2, 0.3, 0.7, 1.0), ep(3, 0.4, 0.7, 1.5), ep(4, 0.35, 0.6, 1.5),  # 4: dominated
             ep(5, 0.4, 0.8, 2.0), ep(6, 0.4, 0.8, 2.5)]                          # 6: dominated
    assert [f["policy"]["l"]["w"] for f in pareto_front(lines)] == [2, 3, 5]


def test_the_report_reads_a_shared_run_as_a_model(shared, tmp_path):
    from robustq.report import build_report
    from robustq.report.collect import discover

    records = discover([shared])
    assert [r.kind for r in records] == ["model"] and not records[0].missing
    done = build_report([shared], tmp_path / "r.html")
    assert len(done["runs"]) == 1 and not done["missing"]
    assert "lsq_shared" in (tmp_path / "r.html").read_text()
