"""Certification called from Python with one config (no CLI): plain with the IRS cache, then
the quantized model incrementally against it; sigma from the checkpoint; refusals first."""

import json

import pytest

from robustq.certify.config import CertifyConfig
from robustq.certify.workflow import CertifyJob, run_certify
from robustq.models.train import TrainConfig
from robustq.quant.workflow import QuantizeJob, TrainJob, run_quantize, run_train
from robustq.utils.errors import RobustqError

SMALL = CertifyConfig(n0=10, n=60, batch_size=60, chunk=30, skip=250, max_images=3)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    fp = run_train(TrainJob(data="embedded", train=TrainConfig(
        epochs=1, batch_size=32, max_images=64, eval_images=16, sigma=0.25)), root / "fp")
    q = run_quantize(QuantizeJob(checkpoint=str(fp.checkpoint), data="embedded", bits="4/4",
                                 epochs=0), root / "q")
    return fp.checkpoint, q.checkpoint


def test_plain_then_incremental_certification(models, tmp_path):
    fp, q = models
    plain = run_certify(CertifyJob(checkpoint=str(fp), data="embedded", certify=SMALL,
                                   cache=True, engine="eager"), tmp_path / "fp")
    meta = json.loads((tmp_path / "fp" / "run.json").read_text())
    assert plain["images"] == 3 and meta["config"]["sigma"] == 0.25     # the checkpoint's
    assert meta["model"]["checkpoint"] == str(fp.resolve()) and meta["cache"] is True
    irs = run_certify(CertifyJob(checkpoint=str(q), data="embedded",
                                 certify=CertifyConfig(**{**SMALL.to_json(), "n_p": 30}),
                                 incremental=str(tmp_path / "fp"), engine="eager"),
                      tmp_path / "irs")
    assert irs["images"] == 3 and json.loads((tmp_path / "irs" / "run.json").read_text())["kind"] == "irs"
    again = run_certify(CertifyJob(checkpoint=str(fp), data="embedded", certify=SMALL,
                                   cache=True, engine="eager"), tmp_path / "fp")
    assert again["acr"] == plain["acr"]                   # a finished run is read back, not redone


@pytest.mark.parametrize("bad,match", [
    ({"split": "val"}, "split"),
    ({"cache": True, "incremental": "runs/fp"}, "does not combine"),
])
def test_certify_job_refuses_bad_values(bad, match):
    with pytest.raises(RobustqError, match=match):
        CertifyJob(checkpoint="m.safetensors", **bad)


def test_an_unknown_checkpoint_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(RobustqError):
        run_certify(CertifyJob(checkpoint=str(tmp_path / "none.safetensors")), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_offset_past_the_data_is_refused_before_anything_is_written(models, tmp_path):
    fp, _ = models
    past = CertifyConfig(**{**SMALL.to_json(), "offset": 10**6})
    with pytest.raises(RobustqError, match="--offset 1000000: past the last"):
        run_certify(CertifyJob(checkpoint=str(fp), data="embedded", certify=past), tmp_path / "o")
    assert not (tmp_path / "o").exists()
