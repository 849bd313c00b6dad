"""Executors: results in submission order on every executor, dead workers replaced, bad options
refused in one line; sharded certification writes exactly the files of a one-process run."""

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from robustq.certify.run import CACHE, TSV, CertifyConfig, certify_dataset, irs_certify_dataset
from robustq.models import get_model
from robustq.models.compile import freeze_for_inference
from robustq.utils.errors import RobustqError
from robustq.utils.parallel import SERIAL, PoolExecutor, get_executor

CFG = dict(sigma=0.25, n0=10, n=200, alpha=0.01, batch_size=100, chunk=50, skip=1,
           max_images=9)


def square_and_pid(state, unit):
    return state * unit * unit, os.getpid()


def dies_once(marker: str, unit):
    """Ends its worker process the first time any worker runs unit 3."""
    if unit == 3 and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return unit


class DiesOnce(nn.Module):
    """``model``, except that the first forward pass in a worker process that finds no
    ``marker`` file ends that process (a worker killed mid-unit)."""

    def __init__(self, model: nn.Module, marker: str) -> None:
        super().__init__()
        self.model, self.marker, self.num_classes = model, marker, model.num_classes
        self.driver = os.getpid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if os.getpid() != self.driver and not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(1)
        return self.model(x)


def model2():
    torch.manual_seed(0)
    return get_model("small_cnn", 2, 3).eval()


def untimed(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if not k.endswith("_s")}


def table(path: Path) -> list[list[str]]:
    """certify.tsv without its time column (the only field that differs between executors)."""
    lines = [ln.split("\t") for ln in path.read_text().splitlines()]
    col = lines[0].index("time")
    return [ln[:col] + ln[col + 1:] for ln in lines]


def test_pool_yields_results_in_submission_order_from_several_processes():
    pool = PoolExecutor(2, threads=1)
    with pool.session(3) as run:
        out = list(run.imap(square_and_pid, range(12)))
    assert [r for r, _ in out] == [3 * u * u for u in range(12)]
    assert len({pid for _, pid in out}) == 2 and os.getpid() not in {pid for _, pid in out}
    with SERIAL.session(3) as run:
        assert list(run.imap(square_and_pid, [2])) == [(12, os.getpid())]


def test_a_dead_worker_is_replaced_and_its_units_run_again(tmp_path):
    marker = str(tmp_path / "died")
    with PoolExecutor(2, threads=1).session(marker) as run:
        assert list(run.imap(dies_once, range(8))) == list(range(8))
    assert os.path.exists(marker)


@pytest.mark.parametrize("workers, ray, message", [
    (0, None, "--workers must be an integer >= 1"),
    (2, "auto", "--workers and --ray exclude each other"),
])
def test_bad_executor_options_are_refused_in_one_line(workers, ray, message):
    with pytest.raises(RobustqError, match=message):
        get_executor(workers, ray)


def test_sharded_certification_writes_the_files_of_a_one_process_run(tmp_path, tiny_rgb_dataset):
    cfg = CertifyConfig(**CFG)
    # a frozen TorchScript copy cannot be pickled: it travels as its recipe (shippable)
    frozen = freeze_for_inference(model2(), (100, *tiny_rgb_dataset.image_shape))
    one = certify_dataset(frozen, tiny_rgb_dataset, cfg, tmp_path / "one", cache=True)
    two = certify_dataset(frozen, tiny_rgb_dataset, cfg, tmp_path / "two", cache=True,
                          executor=PoolExecutor(2, threads=1))
    assert table(tmp_path / "one" / TSV) == table(tmp_path / "two" / TSV)
    assert (tmp_path / "one" / CACHE).read_bytes() == (tmp_path / "two" / CACHE).read_bytes()
    assert untimed(one) == untimed(two)
    irs_cfg = CertifyConfig(**{**CFG, "n_p": 100})
    for name, ex in (("irs1", SERIAL), ("irs2", PoolExecutor(2, threads=1))):
        irs_certify_dataset(model2(), tiny_rgb_dataset, irs_cfg, tmp_path / "one",
                            tmp_path / name, executor=ex)
    assert table(tmp_path / "irs1" / TSV) == table(tmp_path / "irs2" / TSV)


def test_certification_survives_a_killed_worker(tmp_path, tiny_rgb_dataset):
    cfg = CertifyConfig(**CFG)
    certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path / "one")
    marker = str(tmp_path / "died")
    certify_dataset(DiesOnce(model2(), marker), tiny_rgb_dataset, cfg, tmp_path / "two",
                    executor=PoolExecutor(2, threads=1))
    assert os.path.exists(marker)
    assert table(tmp_path / "one" / TSV) == table(tmp_path / "two" / TSV)


def test_ray_certification_equals_one_process_and_survives_a_killed_worker(
        local_ray, tmp_path, tiny_rgb_dataset):
    from robustq.utils.parallel import RayExecutor

    cfg = CertifyConfig(**CFG)
    certify_dataset(model2(), tiny_rgb_dataset, cfg, tmp_path / "one", cache=True)
    executor = RayExecutor("auto")
    assert executor.describe() == {"executor": "ray", "workers": 2, "threads_per_worker": 1}
    marker = str(tmp_path / "died")
    certify_dataset(DiesOnce(model2(), marker), tiny_rgb_dataset, cfg, tmp_path / "two",
                    cache=True, executor=executor)
    assert os.path.exists(marker)                      # a worker died; Ray ran its unit again
    assert table(tmp_path / "one" / TSV) == table(tmp_path / "two" / TSV)
    assert (tmp_path / "one" / CACHE).read_bytes() == (tmp_path / "two" / CACHE).read_bytes()


def test_work_that_cannot_be_shipped_is_refused_in_one_line():
    import threading

    pool = PoolExecutor(2, threads=1)
    with pytest.raises(RobustqError, match="cannot be shipped to worker processes"), \
            pool.session(threading.Lock()):
        pass
    with pool.session(None) as run, \
            pytest.raises(RobustqError, match="cannot be shipped to worker processes"):
        list(run.imap(square_and_pid, [threading.Lock()]))
