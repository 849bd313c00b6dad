import json

import pytest

from robustq.bench.runner import UNITS_FILE
from robustq.bench.tables import family_seconds, throughput


@pytest.fixture
def units_dir(tmp_path):
    units = [{"unit": "clean", "family": "clean", "images": 100, "seconds": 2.0},
             {"unit": "fgsm-linf-2/255", "family": "adversarial", "images": 50, "seconds": 1.0},
             {"unit": "pgd-linf-2/255", "family": "adversarial", "images": 50, "seconds": 4.0},
             {"unit": "autoattack-linf-2/255", "family": "adversarial", "images": 10,
              "seconds": 30.0},
             {"unit": "fog-s1", "family": "natural", "images": 100, "seconds": 0.5},
             {"unit": "fog-s2", "family": "natural", "images": 100, "seconds": 0.0}]
    (tmp_path / UNITS_FILE).write_text("".join(json.dumps(u) + "\n" for u in units))
    return tmp_path


def test_family_seconds_sum_each_familys_units_with_autoattack_apart(units_dir):
    assert family_seconds(units_dir) == {"clean": 2.0, "adversarial": 5.0, "autoattack": 30.0,
                                         "natural": 0.5}


def test_throughput_is_the_median_rate_and_the_total_all_units(units_dir):
    tp = throughput(units_dir)
    assert tp["adversarial"] == pytest.approx((50 + 12.5) / 2)  # median of two rates (img/s)
    assert tp["natural"] == 200.0                       # the 0-second unit has no rate
    assert tp["total_seconds"] == sum(family_seconds(units_dir).values())


def test_a_run_without_units_has_no_times(tmp_path):
    assert family_seconds(tmp_path) == {} and throughput(tmp_path) == {"total_seconds": 0.0}
