import pytest

from trainspeed.stats import first_and_steady, images_per_second, speedup, steps_per_epoch
from trainspeed.timing import Timer


def test_timer_sums_what_it_times_and_syncs_at_both_ends():
    ticks = iter([10.0, 12.5, 20.0, 21.0, 30.0, 30.25])
    events = []
    timer = Timer(synchronize=lambda: events.append("sync"), clock=lambda: events.append("tick") or next(ticks))
    with timer.measure("epoch") as first:
        events.append("work")
    with timer.measure("epoch"):
        pass
    with timer.measure("eval"):
        pass
    assert first.seconds == 2.5
    assert timer.records["epoch"] == [2.5, 1.0]
    assert timer.total("epoch") == 3.5 and timer.total("eval") == 0.25 and timer.total("other") == 0
    assert events[:5] == ["sync", "tick", "work", "sync", "tick"]


def test_timer_records_a_region_that_raises():
    ticks = iter([0.0, 4.0])
    timer = Timer(clock=lambda: next(ticks))
    with pytest.raises(RuntimeError), timer.measure("epoch"):
        raise RuntimeError("out of memory")
    assert timer.records["epoch"] == [4.0]


def test_first_epoch_apart_and_steady_as_median():
    assert first_and_steady([9.0, 3.0, 5.0, 4.0]) == (9.0, 4.0)
    assert first_and_steady([9.0, 3.0]) == (9.0, 3.0)
    assert first_and_steady([2.0]) == (2.0, 2.0)
    with pytest.raises(ValueError):
        first_and_steady([])


def test_rates_and_speedups():
    assert images_per_second(50_000, 4.0) == 12_500
    assert speedup(44.0, 3.6) == pytest.approx(12.222, abs=1e-3)
    with pytest.raises(ValueError):
        speedup(1.0, 0.0)


def test_steps_keep_the_last_partial_batch():
    assert steps_per_epoch(50_000, 32) == 1_563
    assert steps_per_epoch(64, 32) == 2 and steps_per_epoch(65, 32) == 3


def test_spread_of_repeats():
    from trainspeed.stats import spread

    result = spread([10.0, 12.0, 11.0, 13.0])
    assert (result.median, result.minimum, result.maximum, result.samples) == (11.5, 10.0, 13.0, 4)
    # population std of [10, 12, 11, 13] = sqrt(1.25) = 1.1180; mean 11.5
    assert result.cv == pytest.approx(1.1180 / 11.5, abs=1e-4) and result.noisy
    steady = spread([10.0, 10.2, 9.9])
    assert steady.cv == pytest.approx(0.01247, abs=1e-4) and not steady.noisy
    assert spread([4.0]).cv == 0.0


def test_projection_scales_the_median_step_to_the_epoch():
    from trainspeed.stats import projected_epoch_s

    # 50,000 images at batch 32 = 1562.5 full-batch steps of 0.03 s (the median of the timed steps).
    assert projected_epoch_s([0.05, 0.03, 0.03, 0.029], 50_000, 32) == pytest.approx(0.03 * 1562.5)
    with pytest.raises(ValueError):
        projected_epoch_s([], 10, 2)


@pytest.mark.parametrize("capacity", [1, 2, 3, 100, 1000, 1024, 1025])
def test_largest_fitting_batch_by_doubling_then_bisection(capacity):
    from trainspeed.stats import largest_fitting

    probes = []

    def fits(batch):
        probes.append(batch)
        return batch <= capacity

    assert largest_fitting(fits) == capacity
    assert len(probes) <= 2 * capacity.bit_length() + 2  # logarithmic, not a scan


def test_largest_fitting_when_nothing_fits_or_all_fits():
    from trainspeed.stats import largest_fitting

    assert largest_fitting(lambda b: False) is None
    assert largest_fitting(lambda b: True, limit=4096) == 4096
