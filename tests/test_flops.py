import pytest
import torch

from trainspeed.flops import StepCost, epoch_floor_s, model_flops_utilization, training_step_cost
from trainspeed.fold import roofline
from trainspeed.machine.peaks import measure_peaks
from trainspeed.models import create_model


def test_ann_step_flops_by_hand():
    spec = create_model("ann", (3, 32, 32), 10)
    cost = training_step_cost(spec.network, (3, 32, 32), 32, "sgd")
    # Per image: the first layer needs no input gradient (2 products), the others do (3 products).
    per_image = 2 * (2 * 3072 * 3000 + 3 * 3000 * 1000 + 3 * 1000 * 10)
    assert cost.flops == 32 * per_image == 1_757_568_000
    # Parameters: read twice, gradient written once, then SGD reads weight and gradient and writes the weight.
    parameter_bytes = 12_230_010 * 4 * (3 + 3)
    activations = 32 * 3072 + 4 * 32 * (3000 + 1000 + 10)
    assert cost.bytes == parameter_bytes + 4 * activations


def test_cnn_step_flops_by_hand():
    spec = create_model("cnn", (3, 32, 32), 10)
    cost = training_step_cost(spec.network, (3, 32, 32), 1, "adam")
    macs = [32 * 32 * 32 * 3 * 9, 16 * 16 * 64 * 32 * 9, 14 * 14 * 64 * 64 * 9, 3136 * 512, 512 * 10]
    assert cost.flops == 2 * (2 * macs[0] + 3 * sum(macs[1:]))


def test_floor_and_mfu():
    cost = StepCost(flops=2e9, bytes=3e8)
    # 1000 steps: 2e12 FLOPs at 1e11 FLOP/s = 20 s; 3e11 bytes at 1e10 B/s = 30 s: memory-bound.
    assert epoch_floor_s(cost, 1000, 1e11, 1e10) == pytest.approx(30.0)
    assert epoch_floor_s(cost, 1000, 1e10, 1e11) == pytest.approx(200.0)
    assert model_flops_utilization(4e10, 1e11) == pytest.approx(0.4)


def test_roofline_fields_of_a_case():
    case = roofline(1.6e9, 3e8, 50_000, 32, 50.0, {"matmul_flops_per_s": 1e11, "bandwidth_bytes_per_s": 1e10})
    steps = 50_000 / 32
    assert case["achieved_flops_per_s"] == pytest.approx(1.6e9 * steps / 50.0)  # 50 GFLOP/s
    assert case["mfu"] == pytest.approx(0.5)
    assert case["floor_epoch_s"] == pytest.approx(max(1.6e9 * steps / 1e11, 3e8 * steps / 1e10))
    assert case["warnings"] == []


def test_an_epoch_that_beats_a_peak_shows_no_false_floor_or_mfu_without_a_warning():
    peaks = {"matmul_flops_per_s": 1e11, "bandwidth_bytes_per_s": 1e10}
    # 3e8 bytes a step at 1e10 B/s is a 46.9 s floor; the epoch took 32.4 s (the cache held the weights).
    case = roofline(1.6e9, 3e8, 50_000, 32, 32.4, peaks)
    assert case["floor_epoch_s"] is None
    assert case["warnings"] == ["no floor shown: the epoch (32.4 s) beat the floor computed from the measured "
                                "peaks (46.9 s), so a peak was measured low (caches may hold the weights)"]
    fast = roofline(1.6e9, 3e8, 50_000, 32, 20.0, {**peaks, "bandwidth_bytes_per_s": 1e12})
    assert fast["mfu"] is None and fast["warnings"][0] == (
        "no MFU shown: training ran at 125% of the measured matmul peak, so that peak was measured low "
        "(another load during its measurement?)")


def test_peaks_measured_under_load_give_no_mfu_or_floor():
    loaded = {"matmul_flops_per_s": 1e11, "bandwidth_bytes_per_s": 1e10, "under_load": True}
    case = roofline(1.6e9, 3e8, 50_000, 32, 50.0, loaded)
    assert case["achieved_flops_per_s"] == pytest.approx(1.6e9 * 50_000 / 32 / 50.0)
    assert case["mfu"] is None and case["floor_epoch_s"] is None and "peaks were measured while" in case["warnings"][0]


def test_peaks_are_measured_again_while_other_programs_load_the_cpu(monkeypatch):
    from trainspeed.machine import peaks as peaks_module

    readings = iter([(True, 1e11), (False, 3e11), (True, 9e11)])
    calls = []

    def once(device, precision, repeats):
        calls.append(precision)
        loaded, flops = next(readings)
        monkeypatch.setattr(peaks_module.validity, "under_load", lambda *args: loaded)
        return peaks_module.Peaks(flops, 1e10, 2048, 2**28, precision)

    monkeypatch.setattr(peaks_module, "_measure_once", once)
    found = peaks_module.measure_peaks(torch.device("cpu"))
    # The loaded first reading is taken again; the quiet second is kept (with the best of both) and ends it.
    assert len(calls) == 2 and found.matmul_flops_per_s == 3e11 and not found.under_load


def test_peaks_are_measured_on_the_cpu():
    peaks = measure_peaks(torch.device("cpu"), repeats=1)
    assert peaks.matmul_flops_per_s > 1e9 and peaks.bandwidth_bytes_per_s > 1e8
    assert peaks.matmul_size == 2048
