from robustq.bench.corruptions import BENCHMARK
from robustq.bench.findings import check_findings, pool_results
from robustq.bench.systematic import VARIANTS


def model(name, method, bits, wcar, mnr, acc_s, ranking, sys_acc):
    return {"model": name, "method": method, "bits": bits, "wcar": wcar, "mnr": mnr,
            "acc_s": acc_s, "corruption_ranking": ranking, "systematic_accuracy": sys_acc}


def robustmq_like():
    """Data built to agree with all four findings."""
    ranking = ["impulse_noise", "glass_blur"] + [c for c in BENCHMARK if c not in (
        "impulse_noise", "glass_blur", "brightness")] + ["brightness"]
    good = {"bilinear", "linear", "area", "bicubic", "cubic"}
    sys_acc = {v: 0.5 if "nearest" in v else 0.9 if v.rsplit("-", 1)[1] in good else 0.8
               for v in VARIANTS}
    models = [model("fp", "fp", 32, 0.10, 0.70, 0.85, ranking, sys_acc)]
    for m in ("lsq", "pact"):
        for b in (2, 4, 6, 8):
            models.append(model(f"{m}_w{b}a{b}", m, b, 0.30 - 0.02 * b, 0.40 + 0.03 * b,
                                0.60 + 0.02 * b, ranking, sys_acc))
    return {"models": models}


def test_all_four_hold_on_data_that_agree():
    f = check_findings(robustmq_like())
    assert [x["holds"] for x in f] == [True, True, True, True]


def test_findings_can_fail_and_can_lack_data():
    res = robustmq_like()
    for r in res["models"][1:]:
        r["wcar"] = 0.05                          # quantized less robust to attacks than FP
        r["corruption_ranking"] = list(reversed(r["corruption_ranking"]))
    f = check_findings(res)
    assert f[0]["holds"] is False
    assert check_findings({"models": res["models"][:1]})[0]["holds"] is None
    assert check_findings({"models": []})[3]["holds"] is None


def test_an_adversarial_floor_leaves_that_half_undecided_and_the_others_still_decide():
    res = robustmq_like()
    for r in res["models"]:
        r["wcar"] = 0.0                # the largest budget breaks every image of every model
    f1, f2 = check_findings(res)[:2]
    assert f1["adversarial_at_a_floor"] and f1["holds"] is None and f2["holds"] is None
    for r in res["models"][1:]:
        r["mnr"] = 0.95                # quantized *more* robust to corruptions: half 2 fails
    assert check_findings(res)[0]["holds"] is False


def test_adversarial_metric_is_never_mixed_across_models():
    res = robustmq_like()
    for r in res["models"]:
        r["wcar_gradient"] = r["wcar"] + 0.5       # FGSM/PGD alone: weaker, so higher
    for r in res["models"][3:]:
        del r["wcar"]                              # AutoAttack not run on these yet
    f1 = check_findings(res)[0]
    assert f1["adversarial_metric"] == "wcar_gradient"
    assert f1["adversarial"]["fp"] == res["models"][0]["wcar_gradient"]
    assert check_findings(robustmq_like())[0]["adversarial_metric"] == "wcar"


def test_pooled_runs_compare_each_model_with_its_own_fp():
    strong, weak = robustmq_like(), robustmq_like()
    for r in weak["models"]:                       # a weaker architecture: everything lower
        r["wcar"], r["mnr"], r["acc_s"] = r["wcar"] - 0.05, r["mnr"] - 0.3, r["acc_s"] - 0.3
    weak["models"][0]["mnr"] = 0.9                 # ...except its FP model's natural robustness
    pooled = pool_results({"a": strong, "b": weak})
    f1, f2 = check_findings(pooled)[:2]
    # each group's quantized models lie below their own FP on mNR and above it on WCAR
    assert f1["natural"]["share_of_quantized_models"] == 1.0
    assert f1["adversarial"]["share_of_quantized_models"] == 1.0
    assert f1["natural"]["fp"] == (0.70 + 0.9) / 2
    assert set(f2["natural"]) == {"a/lsq", "a/pact", "b/lsq", "b/pact"}
    assert [x["holds"] for x in check_findings(pooled)] == [True, True, True, True]
    assert check_findings(pool_results({"a": strong}))[1]["natural"] == {"a/lsq": 1.0,
                                                                         "a/pact": 1.0}


def test_pooled_share_counts_models_against_their_group_only():
    a, b = robustmq_like(), robustmq_like()
    for r in b["models"][1:]:
        r["mnr"] = 0.95                            # b's quantized models beat b's FP (0.70)
    f1 = check_findings(pool_results({"a": a, "b": b}))[0]
    assert f1["natural"]["share_of_quantized_models"] == 0.5
    assert f1["holds"] is False


def test_a_model_without_a_number_is_left_out_of_every_comparison_and_trend():
    res = robustmq_like()
    res["models"][2]["mnr"] = float("nan")       # e.g. a cell that failed to run
    res["models"][3]["mnr"] = None
    f1, f2 = check_findings(res)[:2]
    assert f1["holds"] is True and f2["holds"] is True
    assert f2["natural"] == {"pact": 1.0}     # lsq has two widths left (2, 8): too few for a trend
