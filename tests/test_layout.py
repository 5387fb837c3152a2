"""The activation layout: chosen per device from timed steps, recorded, and never changing the math."""

import re

import numpy as np
import pytest
import torch

from trainspeed.engine import layout
from trainspeed.models import create_model
from trainspeed.timing import Timer

SHAPE = (3, 16, 16)


def batch(count=96):
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (count, *SHAPE), dtype=np.uint8))
    return images, torch.from_numpy(rng.integers(0, 10, count))


def build(memory_format):
    torch.manual_seed(0)
    spec = create_model("cnn", SHAPE, 10, memory_format)
    return spec, spec.make_optimizer(spec.network.parameters())


def test_each_layout_is_timed_on_the_cases_own_steps():
    images, labels = batch()
    timer = Timer()
    seconds = {name: layout.step_seconds(build, fmt, images, labels, 32, "fp32", timer, graphs=False, warm=2,
                                         timed=4)
               for name, fmt in layout.LAYOUTS.items()}
    assert set(seconds) == {"channels_last", "contiguous"} and all(s > 0 for s in seconds.values())
    # 4 timed steps from a 3-batch epoch: two blocks per layout.
    assert len(timer.records["layout probe"]) == 4
    assert sum(timer.records["layout probe"]) == pytest.approx(4 * sum(seconds.values()))


def test_the_faster_layout_is_chosen_and_the_reason_kept():
    assert layout.choose({"channels_last": 0.002, "contiguous": 0.003}) == (
        "channels_last", "channels_last: fastest step measured on this device "
                         "(channels_last 2.000 ms vs contiguous 3.000 ms per step)")
    assert layout.choose({"channels_last": 0.004, "contiguous": 0.003})[0] == "contiguous"


def test_a_near_tie_keeps_the_default_layout_so_a_seed_gives_the_same_losses_again():
    # 5% faster is within the noise of a busy machine: a run must not flip layouts (and rounding) on it.
    assert layout.choose({"channels_last": 0.0100, "contiguous": 0.0095}) == (
        "channels_last", "channels_last: no layout measured more than 10% faster than the default on this "
                         "device (channels_last 10.000 ms vs contiguous 9.500 ms per step)")
    assert layout.choose({"channels_last": 0.0100, "contiguous": 0.0089})[0] == "contiguous"
    assert layout.choose({"contiguous": 0.003})[0] == "contiguous"


def test_a_layout_override_applies_to_convolutional_models_only():
    assert create_model("cnn", SHAPE, 10).memory_format == torch.channels_last
    assert create_model("cnn", SHAPE, 10, torch.contiguous_format).memory_format == torch.contiguous_format
    assert create_model("ann", SHAPE, 10, torch.channels_last).memory_format == torch.contiguous_format
    assert layout.layout_name(torch.channels_last) == "channels_last"


def test_the_layout_changes_no_arithmetic():
    images, _ = batch(8)
    last, _ = build(torch.channels_last)
    flat, _ = build(torch.contiguous_format)
    from trainspeed.engine.step import as_input

    last.network.eval(), flat.network.eval()
    torch.testing.assert_close(last.network(as_input(images, last.memory_format)),
                               flat.network(as_input(images, flat.memory_format)), rtol=1e-5, atol=1e-5)


def test_every_repeat_of_a_case_times_the_layout_its_first_repeat_chose(monkeypatch):
    import trainspeed
    from trainspeed import measure

    asked = []
    real = measure._layout

    def recording(*args):
        asked.append((args[-2], args[-1]))  # the layout and the CPU kernels it was handed
        return real(*args)

    monkeypatch.setattr(measure, "_layout", recording)
    case = trainspeed.run(models=["cnn"], devices=["cpu"], dataset="synthetic", limit=320, epochs=2, repeats=2,
                          synthetic_shape=(8, 8, 1), out=None, isolate=False).cases[0]
    first = (case.repeats[0].memory_format, case.repeats[0].layout_choice)
    # Measured on the CPU too; the second repeat is handed the first's layout and kernels, not a new trial.
    kernels = case.repeats[0].kernels
    # Which layout wins depends on this machine's load (the rule itself is tested above); the reason
    # must name the choice and carry both measured steps either way.
    assert first[0] in ("channels_last", "contiguous") and first[1].startswith(f"{first[0]}: ")
    assert re.search(r"channels_last [\d.]+ ms vs contiguous [\d.]+ ms per step", first[1])
    assert kernels and set(kernels) == {f"linear {shape} {product}" for shape in ("64->512", "512->10")
                                        for product in ("forward", "input gradient", "weight gradient")}
    assert asked == [(None, kernels), (first, kernels)]
    assert [r.memory_format for r in case.repeats] == [first[0], first[0]]
    assert case.repeats[1].kernels == kernels and case.repeats[1].startup.tuning_s is None
    assert case.repeats[0].startup.tuning_s > 0
    # The layout trial is start-up too, in the total; a repeat handed the layout pays none.
    first_startup = case.repeats[0].startup
    assert first_startup.layout_s > 0 and case.repeats[1].startup.layout_s is None
    assert first_startup.total_s >= first_startup.tuning_s + first_startup.layout_s


def test_a_layout_handed_on_is_used_as_it_is():
    from trainspeed import measure, plan
    from trainspeed.cases import CaseKey
    from trainspeed.progress import EpochProgress

    config = plan.make_config(models=["cnn"], dataset="synthetic", limit=64, epochs=2, synthetic_shape=(8, 8, 1))
    data, _ = plan.load_data(config)
    key = CaseKey(plan.workload(data, "cnn", 32, "fp32"), "cpu")
    chosen = ("contiguous", "contiguous: fastest step measured on this device (...)")
    with EpochProgress() as progress:
        measured, spec = measure.measure_repeat(config, key, 2, data, torch.device("cpu"), progress,
                                                layout_chosen=chosen)
    assert (measured.memory_format, measured.layout_choice) == chosen
    assert spec.memory_format == torch.contiguous_format


def test_no_kernels_are_tried_where_autocast_runs_its_own():
    from trainspeed import measure, plan
    from trainspeed.cases import CaseKey

    config = plan.make_config(models=["ann"], dataset="synthetic", limit=64, epochs=2, synthetic_shape=(8, 8, 1))
    data, _ = plan.load_data(config)
    bf16 = CaseKey(plan.workload(data, "ann", 32, "bf16"), "cpu")
    assert measure._kernels(bf16, data, torch.device("cpu"), None) == (
        None, ("none tried: in bf16 the linear layers run autocast's own kernels",), None)
    fp32 = CaseKey(plan.workload(data, "ann", 32, "fp32"), "cpu")
    choices, _, seconds = measure._kernels(fp32, data, torch.device("cpu"), None)
    assert set(choices) >= {"linear 64->3000 forward"} and seconds > 0
