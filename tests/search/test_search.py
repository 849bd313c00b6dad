import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from robustq.cli.main import app
from robustq.search.search import Search, SearchConfig, read_state
from robustq.utils.errors import RobustqError
from robustq.utils.progress import CountingProgress, Progress
from tests.conftest import write_image_folder

runner = CliRunner()


@pytest.fixture(scope="module")
def fp(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    write_image_folder(root / "data", classes=("a", "b", "c", "d"), per_class=10)
    res = runner.invoke(app, ["train", "--data", str(root / "data"), "--arch", "small_cnn",
                              "--epochs", "2", "--batch-size", "8", "--sigma", "0.25",
                              "--out", str(root / "fp")])
    assert res.exit_code == 0, res.output
    return root


def config(root, **kw):
    base = dict(checkpoint=str(root / "fp" / "model.safetensors"), data=str(root / "data"),
                strategy="haq", budget=5.0, episodes=5, warmup=2, finetune_images=12,
                holdout_images=12, cert_images=4, n0=10, n=60, n_p=20, batch_size=100)
    return SearchConfig(**(base | kw))


def episodes(out):
    lines = [json.loads(x) for x in (out / "episodes.jsonl").read_text().splitlines()]
    return [(e["episode"], e["reward"], e["policy"], e["bitops_percent"]) for e in lines]


@pytest.mark.parametrize("strategy", ["haq", "arq", "random", "tpe", "nsga2"])
def test_killed_search_resumes_into_the_same_episodes(fp, tmp_path, strategy):
    cfg = config(fp, strategy=strategy)
    Search(cfg, tmp_path / "full").run()

    class Kill(Exception):
        pass

    class KillAfterThree(Progress):
        def on_update(self, phase):
            if phase.label.endswith("done") and phase.done == 3:
                raise Kill

    with pytest.raises(Kill):
        Search(cfg, tmp_path / "resumed").run(KillAfterThree())
    Search(cfg, tmp_path / "resumed").run()
    full = episodes(tmp_path / "full")
    assert len(full) == 5 and episodes(tmp_path / "resumed") == full
    assert all(e[3] <= 5.0 + 1e-9 for e in full)          # every policy meets the budget


def test_arq_search_certifies_fp_once_and_finishes_on_test(fp, tmp_path):
    s = Search(config(fp, strategy="arq", episodes=3), tmp_path / "arq")
    events = CountingProgress()
    best = s.run(events)
    started = events.labels("start")
    assert started[0].startswith("FP cache: certifying") and started[1] == "episodes"
    updates = events.labels()
    for k in (1, 2, 3):                  # every episode, and the part of it in progress, named
        for part in ("fine-tuning", "reward (arq)", "done"):
            assert any(f"episode {k}/3" in u and part in u for u in updates), (k, part)
    assert (tmp_path / "arq" / "fp_cache" / "irs_cache.bin").is_file()
    assert {"acr", "accuracy", "certify_s", "finetune_s", "agent_s"} <= set(best)
    final = s.finish(test_images=6, test_n=50, progress=events)
    assert any(u.startswith("final model: certifying") for u in events.labels("start"))
    assert events.events[-1][0] == "end" and events.events[-2][2] == 6     # 6 images certified
    assert final["images"] == 6 and 0 <= final["acr"] and final["bitops_percent"] <= 5.0 + 1e-9
    assert set(final["certified_accuracy"]) == {"0.0", "0.25", "0.5", "0.75", "1.0"}
    assert (tmp_path / "arq" / "best_policy.json").is_file()
    assert (tmp_path / "arq" / "best_model.safetensors").is_file()


def test_final_model_with_the_deploy_recipe_is_a_resumable_quantize_run(fp, tmp_path):
    from robustq.quant.checkpoint import load_model

    s = Search(config(fp, strategy="uniform", final_recipe="deploy"), tmp_path / "d")
    s.run()
    events = CountingProgress()
    final = s.finish(test_images=4, test_n=30, progress=events)
    assert any("final model: fine-tuning (deploy, all training images)" in u
               for u in events.labels("start"))
    assert any(u.endswith("images): epoch 3/3") for u in events.labels())     # live epochs
    qat = tmp_path / "d" / "final_model"
    run = json.loads((qat / "run.json").read_text())
    assert run["status"] == "complete" and run["config"]["recipe"] == "deploy"
    assert run["config"]["epochs"] == 3 and run["config"]["distill"] == 0.5
    assert len((qat / "log.jsonl").read_text().splitlines()) == 3          # one line per epoch
    _, meta = load_model(tmp_path / "d" / "best_model.safetensors")
    assert meta["recipe"] == "deploy"
    stamp = (qat / "model.safetensors").stat().st_mtime_ns
    again = s.finish(test_images=4, test_n=30)      # the finished QAT run is read back
    assert (qat / "model.safetensors").stat().st_mtime_ns == stamp
    assert again["acr"] == final["acr"]
    with pytest.raises(RobustqError, match="unknown final recipe"):
        config(fp, final_recipe="long")


def test_the_final_recipe_runs_on_the_configured_quantizer_kernels(fp, tmp_path, monkeypatch):
    from robustq.quant.policy import uniform_policy
    from robustq.search import compare, final

    jobs = []

    def record(job, out, **kw):
        jobs.append(job)
        raise RuntimeError("recorded")

    monkeypatch.setattr(final, "run_quantize", record)
    s = Search(config(fp, strategy="uniform", final_recipe="deploy-cr",
                      quant_kernels="compiled"), tmp_path / "d")
    with pytest.raises(RuntimeError, match="recorded"):
        final.final_model(s, uniform_policy(s.fp, 4, 4, None), tmp_path / "qat", "deploy-cr")
    assert jobs[-1].quant_kernels == "compiled" and jobs[-1].recipe == "deploy-cr"
    assert jobs[-1].method == "lsq_mse"                   # no --method: the recipe's own
    pact = Search(config(fp, strategy="uniform", method="pact"), tmp_path / "p")
    with pytest.raises(RuntimeError, match="recorded"):
        final.final_model(pact, uniform_policy(pact.fp, 4, 4, None), tmp_path / "qp", "deploy")
    assert jobs[-1].method == "pact"                      # an explicit method wins
    cmp = compare.CompareConfig(checkpoint=str(fp / "fp" / "model.safetensors"),
                                final_recipe="deploy", quant_kernels="compiled")
    assert cmp.search_config().quant_kernels == "compiled"
    assert SearchConfig.from_json(s.cfg.to_json()) == s.cfg
    with pytest.raises(RobustqError, match="--quant-kernels"):
        config(fp, quant_kernels="fused")


def test_uniform_is_one_episode_at_its_bits(fp, tmp_path):
    best = Search(config(fp, strategy="uniform", uniform_bits=4), tmp_path / "u").run()
    assert best["episode"] == 0
    assert {(b["w"], b["a"]) for b in best["policy"].values()} == {(4, 4)}


def test_uniform_over_budget_takes_the_widest_uniform_width_that_fits(fp, tmp_path):
    search = Search(config(fp, strategy="uniform", uniform_bits=8, budget=5.0), tmp_path / "u")
    widest = search.table.widest_uniform(5.0)
    assert 2 <= widest < 8
    best = search.run()
    assert {(b["w"], b["a"]) for b in best["policy"].values()} == {(widest, widest)}
    assert best["bitops_percent"] <= 5.0 + 1e-9


def test_bad_settings(fp, tmp_path):
    with pytest.raises(RobustqError, match="unknown quantization method 'xnor'"):
        config(fp, method="xnor")
    with pytest.raises(RobustqError, match="cannot be met"):
        Search(config(fp, budget=0.1), tmp_path / "x")
    with pytest.raises(RobustqError, match="unknown strategy"):
        config(fp, strategy="evolution")
    with pytest.raises(RobustqError, match="exceed"):
        Search(config(fp, finetune_images=100), tmp_path / "y")
    Search(config(fp), tmp_path / "z")
    with pytest.raises(RobustqError, match="other settings"):
        Search(config(fp, episodes=9), tmp_path / "z")


def test_exploration_settings_reach_the_agent_and_are_validated(fp, tmp_path):
    s = Search(config(fp, explore_sigma=0.05, explore_decay=0.9), tmp_path / "s")
    assert (s.agent.cfg.sigma0, s.agent.cfg.sigma_decay) == (0.05, 0.9)
    assert SearchConfig.from_json(s.cfg.to_json()) == s.cfg
    for bad in ({"explore_sigma": 0.0}, {"explore_sigma": 1.5}, {"explore_decay": float("nan")}):
        with pytest.raises(RobustqError, match="explore_"):
            config(fp, **bad)


def test_cli_search_and_compare(fp, tmp_path):
    ckpt = str(fp / "fp" / "model.safetensors")
    common = ["--data", str(fp / "data"), "--finetune-images", "12", "--holdout-images", "12"]
    res = runner.invoke(app, ["search", ckpt, "--out", str(tmp_path / "s"), "--strategy", "random",
                              "--budget", "5", "--episodes", "2", "--test-images", "0",
                              "--cert-images", "4", *common])
    assert res.exit_code == 0, res.output
    best = read_state(tmp_path / "s")["best"]
    found = tmp_path / "s" / "best_policy.json"            # written by the search itself
    assert json.loads(found.read_text())["layers"] == best["policy"]
    (tmp_path / "p.json").write_text(json.dumps(best["policy"]))
    res = runner.invoke(app, ["compare", ckpt, str(tmp_path / "p.json"), str(found), "--out",
                              str(tmp_path / "c"), "--test-images", "4", "--test-n", "40", *common])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "c" / "compare.json").read_text())["rows"]
    assert [r["name"] for r in rows] == ["FP32", "p", "random"]
    assert rows[0]["bitops_percent"] == 100.0
    assert rows[2]["search_episodes"] == 2 and rows[2]["search_wall_s"] > 0
    assert "search_wall_s" not in rows[1] and rows[1]["policy"] == best["policy"]
    assert rows[1]["acr"] == rows[2]["acr"]           # the same policy, evaluated identically
    paired = json.loads((tmp_path / "c" / "compare.json").read_text())["paired"]
    assert [(d["a"], d["b"]) for d in paired] == [("p", "FP32"), ("random", "FP32"),
                                                  ("random", "p")]
    assert paired[1]["acr"]["mean"] == pytest.approx(rows[2]["acr"] - rows[0]["acr"])
    same = paired[2]
    assert (same["acr"]["mean"], same["acr"]["significant"], same["images"]) == (0.0, False, 4)
    # the fine-tuned model is kept: a rerun (or a resumed run) certifies the very same model
    saved = tmp_path / "c" / "runs" / "p" / "model.safetensors"
    assert saved.is_file()
    before = saved.stat().st_mtime_ns
    res = runner.invoke(app, ["compare", ckpt, str(tmp_path / "p.json"), str(found), "--out",
                              str(tmp_path / "c"), "--test-images", "4", "--test-n", "40", *common])
    assert res.exit_code == 0, res.output
    again = json.loads((tmp_path / "c" / "compare.json").read_text())["rows"]
    assert saved.stat().st_mtime_ns == before
    assert [(r["acr"], r["clean_accuracy"]) for r in again] == [
        (r["acr"], r["clean_accuracy"]) for r in rows]
    res = runner.invoke(app, ["compare", ckpt, str(found), str(found), "--out",
                              str(tmp_path / "d"), *common])
    assert res.exit_code == 2 and "same name (random)" in res.output
    res = runner.invoke(app, ["search", ckpt, "--out", str(tmp_path / "bad"), "--budget", "0.01",
                              "--cert-images", "4", *common])
    assert res.exit_code == 2 and "cannot be met" in res.output and "Traceback" not in res.output


def test_compare_reuses_a_matching_fp_certification_and_refuses_others(fp, tmp_path):
    ckpt = str(fp / "fp" / "model.safetensors")
    data = ["--data", str(fp / "data")]
    common = [*data, "--finetune-images", "12", "--holdout-images", "12"]
    res = runner.invoke(app, ["compare", ckpt, "--out", str(tmp_path / "c"), "--test-images",
                              "4", "--test-n", "40", *common])
    assert res.exit_code == 0, res.output
    fresh = json.loads((tmp_path / "c" / "compare.json").read_text())["rows"][0]
    # the same certification made by `robustq certify` (every 10th of the 40 test images)
    res = runner.invoke(app, ["certify", ckpt, *data, "--n0", "100", "--n", "40", "--skip", "10",
                              "--max", "4", "--out", str(tmp_path / "f")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["compare", ckpt, "--out", str(tmp_path / "r"), "--fp-run",
                              str(tmp_path / "f"), "--test-images", "4", "--test-n", "40", *common])
    assert res.exit_code == 0, res.output
    reused = json.loads((tmp_path / "r" / "compare.json").read_text())["rows"][0]
    assert not (tmp_path / "r" / "runs" / "FP32").exists()
    assert reused["certification_dir"] == str((tmp_path / "f").resolve())
    for key in ("smoothed_accuracy", "acr", "ca_0.0", "ca_0.5", "images", "clean_accuracy"):
        assert reused[key] == fresh[key], key
    res = runner.invoke(app, ["compare", ckpt, "--out", str(tmp_path / "bad"), "--fp-run",
                              str(tmp_path / "f"), "--test-images", "4", "--test-n", "50", *common])
    assert res.exit_code == 2 and "n 40 (asked 50)" in res.output and "Traceback" not in res.output


def test_compare_runs_from_python_with_a_config_and_matches_the_cli(fp, tmp_path):
    from robustq.quant.checkpoint import load_model
    from robustq.quant.policy import uniform_policy
    from robustq.search import CompareConfig, run_compare
    from robustq.utils.progress import CountingProgress

    ckpt = str(fp / "fp" / "model.safetensors")
    pol = tmp_path / "u3.json"
    uniform_policy(load_model(ckpt)[0], 3, 3).save(pol)
    cfg = CompareConfig(checkpoint=ckpt, candidates=(str(pol),), data=str(fp / "data"),
                        finetune_images=12, holdout_images=12, test_images=4, test_n=40)
    events, rows = CountingProgress(), []
    record = run_compare(cfg, tmp_path / "py", events, on_row=rows.append)
    assert [r["name"] for r in record["rows"]] == ["FP32", "u3"] == [r["name"] for r in rows]
    assert record["complete"] and record["paired"][0]["a"] == "u3"
    assert "u3: fine-tuning (episode recipe, 12 images)" in events.labels("start")
    res = runner.invoke(app, ["compare", ckpt, str(pol), "--data", str(fp / "data"),
                              "--finetune-images", "12", "--holdout-images", "12",
                              "--test-images", "4", "--test-n", "40", "--out",
                              str(tmp_path / "cli"), "--final-recipe", "none"])
    assert res.exit_code == 0, res.output
    cli = json.loads((tmp_path / "cli" / "compare.json").read_text())
    for a, b in zip(record["rows"], cli["rows"], strict=True):
        assert (a["acr"], a["smoothed_accuracy"]) == (b["acr"], b["smoothed_accuracy"])


def test_compare_reuses_an_fp_run_made_from_another_working_directory(fp, tmp_path,
                                                                       monkeypatch):
    import os

    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "deeper").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a")       # certified with paths relative to a/
    rel = lambda p: os.path.relpath(p)      # noqa: E731
    res = runner.invoke(app, ["certify", rel(fp / "fp" / "model.safetensors"), "--data",
                              rel(fp / "data"), "--n0", "100", "--n", "40", "--skip", "10",
                              "--max", "4", "--out", "fp_run"])
    assert res.exit_code == 0, res.output
    monkeypatch.chdir(tmp_path / "b" / "deeper")  # reused with other relative paths, from b/
    res = runner.invoke(app, ["compare", rel(fp / "fp" / "model.safetensors"), "--data",
                              rel(fp / "data"), "--out", "cmp", "--fp-run",
                              rel(tmp_path / "a" / "fp_run"), "--finetune-images", "12",
                              "--holdout-images", "12", "--test-images", "4", "--test-n", "40"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(Path("cmp/compare.json").read_text())["rows"]
    assert row["certification_dir"] == str((tmp_path / "a" / "fp_run").resolve())
    assert not Path("cmp/runs/FP32").exists()


def test_killed_compare_keeps_finished_rows_and_the_report_lists_the_rest(fp, tmp_path,
                                                                          monkeypatch):
    import robustq.search.compare as search_cmd
    from robustq.report import build_report

    ckpt = str(fp / "fp" / "model.safetensors")
    common = ["--data", str(fp / "data"), "--finetune-images", "12", "--holdout-images", "12",
              "--test-images", "4", "--test-n", "40"]
    res = runner.invoke(app, ["search", ckpt, "--out", str(tmp_path / "s"), "--strategy",
                              "random", "--budget", "5", "--episodes", "1", "--cert-images", "4",
                              "--test-images", "0", *common[:6]])
    assert res.exit_code == 0, res.output
    real, calls = search_cmd.evaluate_on_test, []

    def killed_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(search_cmd, "evaluate_on_test", killed_on_second)
    policy = str(tmp_path / "s" / "best_policy.json")
    runner.invoke(app, ["compare", ckpt, policy, "--out", str(tmp_path / "c"), *common])
    table = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert [r["name"] for r in table["rows"]] == ["FP32"] and not table["complete"]
    result = build_report([tmp_path / "c"], tmp_path / "r.html")
    assert any("random not evaluated yet" in m for m in result["missing"])
    monkeypatch.setattr(search_cmd, "evaluate_on_test", real)
    res = runner.invoke(app, ["compare", ckpt, policy, "--out", str(tmp_path / "c"), *common])
    assert res.exit_code == 0, res.output
    table = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert [r["name"] for r in table["rows"]] == ["FP32", "random"] and table["complete"]
    # a search evaluated by a compare among the reported runs lacks nothing; alone, it does
    alone = build_report([tmp_path / "s"], tmp_path / "alone.html")["missing"]
    assert any("s: no test-split evaluation yet" in m for m in alone)
    both = build_report([tmp_path / "s", tmp_path / "c"], tmp_path / "both.html")["missing"]
    assert not any("test-split" in m for m in both)


def run_search_process(cfg: SearchConfig, out, **env):
    """The search in a fresh process with the fault-point variables ``env``; its exit code."""
    import os
    import subprocess
    import sys

    code = ("import json, sys, torch; torch.set_num_threads(1); "
            "from robustq.search.search import Search, SearchConfig; "
            "Search(SearchConfig.from_json(json.loads(sys.argv[1])), sys.argv[2]).run()")
    full_env = {**os.environ, **{k: str(v) for k, v in env.items()}}
    return subprocess.run([sys.executable, "-c", code, json.dumps(cfg.to_json()), str(out)],
                          env=full_env, capture_output=True, text=True, timeout=300)


def test_kill_at_every_write_point_then_resume_is_exact(fp, tmp_path):
    """Kill the search right after each write of its second episode (every file an episode
    writes, the log line, the state) and inside a resume's rewrite of the log; each resumed
    search ends exactly like the uninterrupted one."""
    cfg = config(fp, strategy="arq", episodes=3, warmup=1)
    done = run_search_process(cfg, tmp_path / "full", ROBUSTQ_FAULT_LOG=tmp_path / "points")
    assert done.returncode == 0, done.stderr
    want = (episodes(tmp_path / "full"), (tmp_path / "full" / "best_policy.json").read_text())
    points = (tmp_path / "points").read_text().split()
    first_state = points.index("search_state.safetensors")
    second = points[first_state + 1: points.index("search_state.safetensors", first_state + 1) + 1]
    kills = {name: points[: first_state + 1 + second.index(name) + 1].count(name)
             for name in second}
    assert {"+episodes.jsonl", "search_state.safetensors", "+certify.tsv"} <= set(kills)
    for j, (name, k) in enumerate(kills.items()):
        out = tmp_path / f"kill-{j}"
        killed = run_search_process(cfg, out, ROBUSTQ_KILL_AT=f"{name}#{k}")
        assert killed.returncode == 137, (name, killed.stderr)
        if name == "+episodes.jsonl":       # the log is one line ahead: kill the resume's rewrite
            again = run_search_process(cfg, out, ROBUSTQ_KILL_AT="episodes.jsonl")
            assert again.returncode == 137, again.stderr
        Search(cfg, out).run()
        got = (episodes(out), (out / "best_policy.json").read_text())
        assert got == want, name


def test_rounds_scored_by_two_workers_equal_one_process_and_resume_mid_round(fp, tmp_path):
    from robustq.utils.parallel import PoolExecutor

    cfg = config(fp, strategy="arq", episodes=5, warmup=1, parallel_episodes=3)
    one = Search(cfg, tmp_path / "one")
    best = one.run()
    two = Search(cfg, tmp_path / "two").run(executor=PoolExecutor(2, threads=1))
    assert episodes(tmp_path / "one") == episodes(tmp_path / "two") and best == {
        **two, **{k: best[k] for k in best if k.endswith("_s")}}
    # killed after the second episode of the first round: the resume scores the round's
    # remaining policy, proposed before the agent observed the first two
    killed = run_search_process(cfg, tmp_path / "kill", ROBUSTQ_KILL_AT="search_state.safetensors#2")
    assert killed.returncode == 137, killed.stderr
    Search(cfg, tmp_path / "kill").run()
    assert episodes(tmp_path / "kill") == episodes(tmp_path / "one")


def test_compare_fine_tunes_on_two_workers_into_the_one_process_table(fp, tmp_path):
    from robustq.quant.checkpoint import load_model
    from robustq.quant.policy import uniform_policy
    from robustq.search import CompareConfig, run_compare
    from robustq.utils.parallel import PoolExecutor

    ckpt = str(fp / "fp" / "model.safetensors")
    pols = []
    for bits in (3, 5):
        pols.append(str(tmp_path / f"u{bits}.json"))
        uniform_policy(load_model(ckpt)[0], bits, bits).save(pols[-1])
    cfg = CompareConfig(checkpoint=ckpt, candidates=tuple(pols), data=str(fp / "data"),
                        finetune_images=12, holdout_images=12, test_images=4, test_n=40)
    one = run_compare(cfg, tmp_path / "one")
    two = run_compare(cfg, tmp_path / "two", executor=PoolExecutor(2, threads=1))

    def untimed(record):
        return [{k: v for k, v in r.items() if not k.endswith("_s") and k != "certification_dir"}
                for r in record["rows"]]

    assert untimed(one) == untimed(two)
    assert [r["name"] for r in two["rows"]] == ["FP32", "u3", "u5"]
    assert [(p["acr"], p["smoothed_accuracy"]) for p in one["paired"]] == \
        [(p["acr"], p["smoothed_accuracy"]) for p in two["paired"]]


def test_rounds_on_a_local_ray_cluster_equal_one_process(fp, tmp_path, local_ray):
    from robustq.utils.parallel import RayExecutor

    cfg = config(fp, strategy="haq", episodes=4, warmup=1, parallel_episodes=2)
    Search(cfg, tmp_path / "one").run()
    Search(cfg, tmp_path / "ray").run(executor=RayExecutor("auto"))
    assert episodes(tmp_path / "one") == episodes(tmp_path / "ray")


def test_tpe_fits_the_episodes_and_any_strategy_takes_either_reward(fp, tmp_path):
    cfg = config(fp, strategy="tpe", episodes=6, warmup=2)
    Search(cfg, tmp_path / "tpe").run()
    lines = [json.loads(x) for x in (tmp_path / "tpe" / "episodes.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and all("acr" in ln for ln in lines)           # ARQ's reward
    assert len({json.dumps(ln["policy"]) for ln in lines}) >= 4
    Search(config(fp, strategy="random", reward="arq", episodes=2), tmp_path / "r").run()
    lines = [json.loads(x) for x in (tmp_path / "r" / "episodes.jsonl").read_text().splitlines()]
    assert all("acr" in ln for ln in lines) and (tmp_path / "r" / "fp_cache").is_dir()
    with pytest.raises(RobustqError, match="unknown reward 'top5'"):
        config(fp, reward="top5")


def test_seed_uniform_starts_with_the_widest_uniform_policy_in_budget(fp, tmp_path):
    from robustq.search.env import action_to_bits

    cfg = config(fp, strategy="arq", episodes=2, warmup=1, budget=5.0, seed_uniform=True)
    search = Search(cfg, tmp_path / "s")
    states, actions, w, a = search.uniform_start()
    table, k = search.table, len(search.table)
    widest = max(b for b in range(2, 9)
                 if table.bitops_percent(np.full(k, b), np.full(k, b)) <= 5.0 + 1e-12)
    assert set(w) == set(a) == {widest}
    assert {action_to_bits(float(x)) for x in actions} == {widest}
    search.run()
    first = json.loads((tmp_path / "s" / "episodes.jsonl").read_text().splitlines()[0])
    assert {b["w"] for b in first["policy"].values()} == {widest}
