"""Energy and cost: a fake NVML (put where `import pynvml` finds it) and a fake powercap tree drive
the meters; the arithmetic, prices and the verdict are checked against hand-computed figures."""

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

import report_fixtures as fx
from trainspeed import energy
from trainspeed.cli import main
from trainspeed.energy import EnergyFigures
from trainspeed.errors import ConfigError
from trainspeed.machine import power
from trainspeed.prices import case_price_per_hour, costs, parse_prices, price_per_hour
from trainspeed.reporting.comparison import compare, headlines
from trainspeed.reporting.worth import case_costs, missing, system_chart, verdicts, worth_table

# --- the arithmetic ------------------------------------------------------------------------


def test_a_wrapped_counter_counts_the_energy_across_the_wrap():
    assert energy.counter_delta(100.0, 350.0, 1000.0) == 250.0
    assert energy.counter_delta(900.0, 50.0, 1000.0) == 150.0  # 100 to the wrap, 50 after it


def test_power_between_two_readings_is_taken_to_change_linearly():
    assert energy.trapezoid(0.0, 100.0, 2.0, 200.0) == pytest.approx(300.0)
    assert energy.trapezoid(1.0, 50.0, 1.0, 80.0) == 0.0


def test_figures_rest_on_the_steady_epochs_as_the_steady_time_does():
    trace = [(0.0, 90.0, 0.5), (1.0, 110.0, 0.9), (2.0, 130.0, None)]
    figures = energy.figures([500.0, 200.0, 220.0], [5.0, 2.0, 2.0], 1000, trace, "RAPL package-0")
    assert figures.joules_per_epoch == pytest.approx(210.0)  # the first epoch left out
    assert figures.joules_per_image == pytest.approx(0.21) and figures.average_w == pytest.approx(105.0)
    # Without the epochs' spans no reading is known to cover an epoch alone: no utilization.
    assert figures.peak_w == 130.0 and figures.utilization is None
    assert figures.recipe_wh == pytest.approx(210.0 * 10 / 3600)
    # Peak from the samples inside the steady epochs; utilization from those a second or more into one
    # (the sample at 0.0 s, 0.5 s into its epoch, still covers time before it).
    spans = [(-3.0, -2.5), (-0.5, 1.5), (1.6, 2.5)]
    inside = energy.figures([500.0, 200.0, 220.0], [5.0, 2.0, 2.0], 1000, trace, "RAPL package-0", epoch_spans=spans)
    assert (inside.peak_w, inside.utilization) == (130.0, 0.9) and inside.trace == tuple(trace)
    # Per epoch, the median over the steady epochs (as the steady time is); power, their sum over their time.
    three = energy.figures([900.0, 100.0, 400.0, 130.0], [9.0, 1.0, 2.0, 1.0], 10, [], "x")
    assert three.joules_per_epoch == 130.0 and three.average_w == pytest.approx(630.0 / 4.0)
    one = energy.figures([300.0], [3.0], 100, [], "x")
    assert (one.joules_per_epoch, one.average_w, one.peak_w, one.utilization) == (300.0, 100.0, None, None)


def test_a_long_trace_is_thinned_to_its_limit_keeping_both_ends():
    trace = [(float(i), float(i), None) for i in range(1001)]
    kept = energy.thinned(trace, 11)
    assert [t for t, _, _ in kept] == [0.0, 100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0, 900.0, 1000.0]


def test_repeats_fold_to_medians_and_the_highest_peak():
    repeats = [EnergyFigures(source="s", joules_per_epoch=j, joules_per_image=j / 10, average_w=j / 2, peak_w=p)
               for j, p in ((100.0, 70.0), (130.0, 90.0), (110.0, 80.0))]
    folded = energy.fold(repeats)
    assert (folded.joules_per_epoch, folded.average_w, folded.peak_w) == (110.0, 55.0, 90.0)
    reason = EnergyFigures(not_measured="no RAPL")
    assert energy.fold([reason, reason]) is reason and energy.fold([None]) is None


# --- prices --------------------------------------------------------------------------------


def test_prices_parse_as_devices_and_kinds():
    assert parse_prices("cpu=0.05, cuda=2.49,cuda:1=3") == {"cpu": 0.05, "cuda": 2.49, "cuda:1": 3.0}
    # Devices named as --devices takes them: any case, "gpu" for CUDA.
    assert parse_prices("CPU=1,gpu=2,GPU:1=3") == {"cpu": 1.0, "cuda": 2.0, "cuda:1": 3.0}
    free = parse_prices("cpu=-0")["cpu"]
    assert free == 0.0 and str(free) == "0.0"  # never a cost of "-0.00"
    prices = {"cpu": 0.05, "cuda": 2.49, "cuda:1": 3.0}
    assert price_per_hour(prices, "cuda:1") == 3.0 and price_per_hour(prices, "cuda:0") == 2.49
    assert price_per_hour(prices, "cuda:0,1") == 2.49 and price_per_hour(prices, "cpu:2") == 0.05
    assert price_per_hour({"cuda": 1.0}, "cpu") is None


@pytest.mark.parametrize("text, message", [
    ("cpu", "'cpu' has no price: write DEVICE=PRICE"), ("cpu=", "is not DEVICE=PRICE"),
    ("tpu=1", "'tpu' is not a device"), ("cuda:0,1=3", "'cuda:0' has no price: .* cuda:0=2.49,cuda:1=2.49"),
    ("cpu=abc", "'abc' for cpu is not a number"), ("cpu=-1", "from 0 to 1e"), ("cpu=nan", "from 0 to 1e"),
    ("cpu=1e308", "from 0 to 1e"),
    ("cpu=1,cpu=2", "priced twice"), (" , ", "no price given"), ("cpu:0=1", "'cpu:0' is not a device"),
])
def test_bad_prices_are_one_line_errors(text, message):
    with pytest.raises(ConfigError, match=message) as raised:
        parse_prices(text)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("flags, message", [
    (["--price", "cuda=two"], "trainspeed: error: --price: 'two' for cuda is not a number"),
    (["--cpu-watts", "-5"], "trainspeed: error: --cpu-watts must be the CPU's power in watts"),
    (["--price", "cpu=1", "--currency", "US\nD"], "trainspeed: error: --currency must be a short name"),
    (["--price", "cpu=1", "--price", "cpu=2"], "trainspeed: error: --price: cpu is priced twice"),
])
def test_bad_energy_and_price_flags_exit_2_with_one_line(capsys, tmp_path, flags, message):
    code = main(["run", "--dataset", "synthetic", "--limit", "64", "--out", str(tmp_path / "out"), *flags])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(message) and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_case_is_priced_for_every_device_it_holds():
    assert case_price_per_hour({"cuda:0": 2.0, "cuda:1": 3.0}, "cuda:0,1", 2) == 5.0
    assert case_price_per_hour({"cuda": 1.8, "cuda:1": 3.0}, "cuda:0,1", 2) == pytest.approx(4.8)
    assert case_price_per_hour({"cuda:0": 2.0}, "cuda:0,1", 2) is None  # cuda:1 has no price
    assert case_price_per_hour({"cuda": 1.8}, "cuda", 4) == pytest.approx(7.2)
    assert case_price_per_hour({"cpu": 0.36}, "cpu:2", 1) == 0.36


def test_cost_is_the_price_times_the_time():
    paid = costs(4.98, 36.0, 50_000 / 36.0)
    assert paid.per_hour == pytest.approx(4.98) and paid.per_epoch == pytest.approx(4.98 * 36 / 3600)
    assert paid.per_recipe == pytest.approx(10 * paid.per_epoch)
    assert paid.per_million_images == pytest.approx(paid.per_epoch * 1e6 / 50_000)


# --- the meters ----------------------------------------------------------------------------


def powercap(root: Path, zones: dict[str, tuple[str, int]], counter_range: int = 1_000_000) -> Path:
    for zone, (name, value) in zones.items():
        (root / zone).mkdir(parents=True)
        (root / zone / "name").write_text(name + "\n")
        (root / zone / "energy_uj").write_text(f"{value}\n")
        (root / zone / "max_energy_range_uj").write_text(f"{counter_range}\n")
    return root


def set_counter(root: Path, zone: str, value: int) -> None:
    # Whole, as sysfs gives it: the sampler thread may read at any moment.
    (root / zone / "energy_uj.new").write_text(f"{value}\n")
    (root / zone / "energy_uj.new").replace(root / zone / "energy_uj")


def test_rapl_reads_packages_and_dram_and_not_the_zones_inside_a_package(tmp_path):
    root = powercap(tmp_path, {"intel-rapl:0": ("package-0", 5), "intel-rapl:0:0": ("core", 5),
                               "intel-rapl:0:1": ("dram", 5), "intel-rapl:1": ("package-1", 5)})
    zones = power.rapl_zones(root)
    assert [name for name, _, _ in zones] == ["package-0", "dram of package 0", "package-1"]
    meter = power.RaplMeter(zones)
    assert meter.source == "RAPL package-0 + dram of package 0 + package-1 (whole CPU socket)"


def test_a_powercap_log_counts_each_epoch_across_a_wrap(tmp_path, monkeypatch):
    root = powercap(tmp_path, {"intel-rapl:0": ("package-0", 900_000), "intel-rapl:0:0": ("dram", 0)})
    monkeypatch.setattr(power, "POWERCAP", root)
    counters = iter([(950_000, 10_000), (150_000, 30_000), (350_000, 50_000)])  # the package wraps in epoch 2
    with power.PowerLog(power.meter_for("cpu")) as log:
        for _ in range(3):
            with log.epoch():
                package, dram = next(counters)
                set_counter(root, "intel-rapl:0", package)
                set_counter(root, "intel-rapl:0:0", dram)
    figures = log.figures([1.0, 0.5, 0.5], 100)
    # epoch 1: 0.05 + 0.01 J; epoch 2: 0.2 + 0.02 J (across the wrap); epoch 3: 0.2 + 0.02 J
    assert log.epoch_j == pytest.approx([0.06, 0.22, 0.22])
    assert figures.joules_per_epoch == pytest.approx(0.22) and figures.average_w == pytest.approx(0.44)
    assert figures.source.startswith("RAPL package-0 + dram") and not figures.estimate


def test_power_from_a_counter_needs_two_reads_a_sampling_interval_apart(tmp_path, monkeypatch):
    # RAPL counts in steps of about a millisecond: two reads microseconds apart would give 0 W or thousands.
    root = powercap(tmp_path, {"intel-rapl:0": ("package-0", 0)})
    monkeypatch.setattr(power, "POWERCAP", root)
    log = power.PowerLog(power.meter_for("cpu"))
    log._read(sample=True)
    set_counter(root, "intel-rapl:0", 1_000)
    log._read(sample=True)
    time.sleep(power.SAMPLE_INTERVAL_S)
    set_counter(root, "intel-rapl:0", 1_000 + 5_000)
    log._read(sample=True)
    (t0, w0, _), (_, w1, _), (t2, w2, _) = log.trace
    assert w0 is None and w1 is None
    assert w2 == pytest.approx(0.006 / (t2 - t0), rel=0.05)  # from the first read: 6 mJ over its interval


def test_without_powercap_the_cpu_says_why_or_takes_the_users_watts(tmp_path, monkeypatch):
    monkeypatch.setattr(power, "POWERCAP", tmp_path / "absent")
    reason = power.meter_for("cpu")
    assert reason.startswith(f"{tmp_path / 'absent'} does not exist (no powercap") and "--cpu-watts W" in reason
    log = power.PowerLog(power.meter_for("cpu", cpu_watts=65))
    with log:
        for _ in range(2):
            with log.epoch():
                pass
    figures = log.figures([2.0, 1.5], 300)
    assert figures.estimate and figures.joules_per_epoch == pytest.approx(97.5) and figures.trace == ()
    assert figures.source == "estimate: --cpu-watts 65 W x time"
    unmeasured = power.PowerLog(reason).figures([1.0], 10)
    assert unmeasured.not_measured == reason and unmeasured.joules_per_epoch is None


def test_a_counter_readable_by_root_alone_says_how_to_open_it(tmp_path, monkeypatch):
    root = powercap(tmp_path, {"intel-rapl:0": ("package-0", 1)})
    real = Path.read_text

    def guarded(path, *args, **kwargs):
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", guarded)
    reason = power.rapl_zones(root)
    assert "readable by root alone" in reason and f"sudo chmod a+r {root}/intel-rapl:*/energy_uj" in reason


class FakeNvml:
    """NVML as nvidia-ml-py presents it, for one board whose counter and power the test sets."""

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):  # noqa: N801 - nvidia-ml-py's names
        pass

    class NVMLError_GpuIsLost(NVMLError):  # noqa: N801
        pass

    def __init__(self, counter: bool = True, lost_after: int | None = None):
        self.counter, self.lost_after = counter, lost_after
        self.energy_mj, self.power_mw, self.busy, self.reads, self.uuids = 5_000_000, 250_000, 97, 0, []

    def nvmlInit(self):  # noqa: N802
        pass

    def nvmlDeviceGetHandleByUUID(self, uuid):  # noqa: N802
        self.uuids.append(uuid)
        return "board"

    def _read(self):
        self.reads += 1
        if self.lost_after is not None and self.reads > self.lost_after:
            raise self.NVMLError_GpuIsLost("GPU is lost")

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):  # noqa: N802
        if not self.counter:
            raise self.NVMLError_NotSupported("Not Supported")
        self._read()
        return self.energy_mj

    def nvmlDeviceGetPowerUsage(self, handle):  # noqa: N802
        self._read()
        return self.power_mw

    def nvmlDeviceGetUtilizationRates(self, handle):  # noqa: N802
        return SimpleNamespace(gpu=self.busy, memory=40)


BOARD = ("nvidia", "GPU-58ae-01")


@pytest.fixture
def nvml(monkeypatch):
    fake = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


def test_a_cuda_device_is_named_to_nvml_by_its_uuid(monkeypatch):
    import torch

    from trainspeed.machine import devices

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(uuid="58ae-01"))
    monkeypatch.setattr(torch.version, "hip", None)
    assert devices.gpu_identity(torch.device("cuda:1")) == BOARD
    monkeypatch.setattr(torch.version, "hip", "6.2")
    assert devices.gpu_identity(torch.device("cuda:0")) == ("amd", None)
    assert power.meter_for("cuda:0", gpu=("amd", None)).startswith("AMD GPUs: trainspeed reads energy through")


def test_a_gpu_is_found_by_its_uuid_and_read_by_its_energy_counter(nvml):
    meter = power.meter_for("cuda:0", gpu=BOARD)
    assert nvml.uuids == [b"GPU-58ae-01"] and meter.source == "NVML energy counter (GPU board)"
    with power.PowerLog(meter) as log:
        for joules in (400, 300, 300):
            with log.epoch():
                nvml.energy_mj += joules * 1000
                log._read(sample=True)  # as the sampler does, inside the epoch
    figures = log.figures([2.0, 1.0, 1.0], 500)
    assert log.epoch_j == [400.0, 300.0, 300.0]
    assert figures.joules_per_epoch == 300.0 and figures.average_w == 300.0 and figures.joules_per_image == 0.6
    # Epochs of a millisecond: NVML's reading covers up to a second before it, so it judges none of them.
    assert figures.peak_w == 250.0 and figures.utilization is None


def test_a_gpu_without_an_energy_counter_integrates_its_power_and_says_so(nvml):
    nvml.counter = False
    meter = power.meter_for("cuda:0", gpu=BOARD)
    assert meter.source == "NVML power, integrated (this GPU has no energy counter)"
    with power.PowerLog(meter) as log:
        for _ in range(2):
            started = time.perf_counter()
            with log.epoch():
                time.sleep(0.25)
            seconds = time.perf_counter() - started
    figures = log.figures([seconds, seconds], 10)
    assert figures.joules_per_epoch == pytest.approx(250.0 * seconds, rel=0.05)
    assert len(log.trace) >= 4  # the marks, and the sampler between them


def test_a_board_that_refuses_power_or_utilization_still_counts_its_energy(nvml):
    def refused(handle):
        raise nvml.NVMLError_NotSupported("Not Supported")

    nvml.nvmlDeviceGetUtilizationRates = refused
    meter = power.meter_for("cuda:0", gpu=BOARD)
    with power.PowerLog(meter) as log:
        for _ in range(2):
            with log.epoch():
                nvml.energy_mj += 80_000
        nvml.nvmlDeviceGetPowerUsage = refused  # power gone mid-case: the counter still counts
        log._read(sample=True)
    figures = log.figures([1.0, 1.0], 10)
    assert figures.joules_per_epoch == 80.0 and figures.utilization is None
    nvml.counter = False
    assert power.meter_for("cuda:0", gpu=BOARD) == "NVML gives neither energy nor power for cuda:0 on this board"
    assert power.meter_for("cuda:0", gpu=("nvidia", "MIG-1234")).startswith("a MIG slice has no energy")


def test_a_gpu_that_disappears_leaves_the_reason_not_a_figure(nvml):
    nvml.lost_after = 3
    with power.PowerLog(power.meter_for("cuda:0", gpu=BOARD)) as log:
        for _ in range(3):
            with log.epoch():
                nvml.energy_mj += 1000
    figures = log.figures([1.0, 1.0, 1.0], 10)
    assert figures.joules_per_epoch is None
    assert figures.not_measured == "the meter stopped answering during the case (NVMLError_GpuIsLost: GPU is lost)"


def test_without_nvidia_ml_py_a_gpu_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert power.meter_for("cuda:0", gpu=BOARD) == (
        'nvidia-ml-py is not installed: pip install "trainspeed[nvml]"')
    assert "Apple GPUs" in power.meter_for("mps")


# --- the verdict ---------------------------------------------------------------------------


def priced(result, prices, currency="USD"):
    result.config.update(prices=prices, currency=currency)
    return result


def measured(case, joules, watts, source, estimate=False, trace=()):
    return replace(case, energy=EnergyFigures(source=source, estimate=estimate, joules_per_epoch=joules,
                                              joules_per_image=joules / case.train_images, average_w=watts,
                                              peak_w=watts, trace=tuple(trace)))


def seeds_with_energy():
    cpu = measured(fx.case("cnn", "cpu", 37.6), 3760.0, 100.0, "RAPL package-0 (whole CPU socket)")
    gpu = measured(fx.case("cnn", "cuda:0", 4.0), 1200.0, 300.0, "NVML energy counter (GPU board)",
                   trace=[(0.0, 280.0, 0.9), (2.0, 320.0, 0.95), (4.0, 300.0, 0.97)])
    return fx.run_result([cpu, gpu])


def test_the_verdict_weighs_speed_energy_and_cost():
    comparison = compare([(None, priced(seeds_with_energy(), {"cpu": 0.5, "cuda": 2.49}))])
    assert verdicts(comparison) == [
        f"The {fx.GPU_NAME} trains the cnn 9.4x faster than the CPU (33.6 s saved per epoch), uses 3.1x less energy "
        "per epoch (1.2 kJ vs 3.76 kJ), and costs 1.89x less per epoch (0.00277 USD vs 0.00522 USD) at the prices "
        "given."]
    assert missing(comparison) == []


def test_without_prices_or_energy_the_verdict_says_what_is_missing_and_how_to_add_it():
    result = seeds_with_energy()
    result.cases[0] = replace(result.cases[0], energy=EnergyFigures(not_measured="no RAPL here; give --cpu-watts W"))
    comparison = compare([(None, result)])
    assert verdicts(comparison) == [f"The {fx.GPU_NAME} trains the cnn 9.4x faster than the CPU (33.6 s saved per "
                                    "epoch)."]
    assert missing(comparison) == [
        "Energy not measured on the CPU: no RAPL here; give --cpu-watts W.",
        "No price for the CPU or the " + fx.GPU_NAME + ", so no cost: give --price cpu=PRICE,cuda=PRICE (money per "
        "hour per device) to trainspeed run, report or compare."]


def test_a_cpu_alone_gets_its_cost_and_its_estimated_energy():
    case = measured(fx.case("cnn", "cpu", 36.0), 2340.0, 65.0, "estimate: --cpu-watts 65 W x time", estimate=True)
    comparison = compare([(None, priced(fx.run_result([case], gpus=False), {"cpu": 0.05}, ""))])
    assert verdicts(comparison) == [
        "The CPU trains the cnn in 36.0 s per epoch: at 0.05 per hour it costs 0.000500 per epoch, 0.00500 for 10 "
        "epochs and 0.0100 per million images; it uses an estimated 2.34 kJ per epoch (65 W on average)."]
    table = worth_table(comparison, lambda c, key: [key.model], ["model"])
    assert table.rows == [["cnn", "cpu", "estimate: --cpu-watts 65 W x time", "2.34 kJ", "0.0468 J", "6.5 Wh",
                           "65 W", "65 W", "-", "0.000500", "0.00500", "0.0100"]]


def test_a_group_of_gpus_is_priced_per_gpu_and_a_cpu_group_per_machine():
    gpus = fx.case("cnn", "cuda:0,1", 2.0, world_size=2, backend="nccl")
    cpus = fx.case("cnn", "cpu:2", 20.0, world_size=2, backend="gloo")
    comparison = compare([(None, priced(fx.run_result([gpus, cpus]), {"cpu": 0.36, "cuda": 1.8}))])
    assert case_costs(comparison, "cuda:0,1", gpus).per_epoch == pytest.approx(2 * 1.8 * 2.0 / 3600)
    assert case_costs(comparison, "cpu:2", cpus).per_epoch == pytest.approx(0.36 * 20.0 / 3600)


def test_compare_weighs_machines_at_each_ones_prices_or_at_those_given(tmp_path, capsys):
    laptop = priced(fx.run_result([measured(fx.case("cnn", "cpu", 36.0), 1800.0, 50.0, "RAPL package-0")],
                                  gpus=False), {"cpu": 0.1})
    server = priced(seeds_with_energy(), {"cuda": 2.0})
    comparison = compare([("laptop", laptop), ("server", server)], baseline="laptop:cpu")
    sentence = next(s for s in verdicts(comparison) if s.startswith("server:cuda:0"))
    assert sentence == (f"server:cuda:0 ({fx.GPU_NAME}) trains the cnn 9.0x faster than laptop:cpu (32.0 s saved per "
                        "epoch), uses 1.50x less energy per epoch (1.2 kJ vs 1.8 kJ), and costs 2.2x more per epoch "
                        "(0.00222 USD vs 0.00100 USD) at the prices given.")
    # The server's CPU has no price: it is weighed on speed and energy alone, and the verdict says so.
    assert verdicts(comparison)[0] == ("server:cpu (Intel Xeon Processor) trains the cnn 1.04x slower than "
                                       "laptop:cpu (1.60 s lost per epoch) and uses 2.1x more energy per epoch "
                                       "(3.76 kJ vs 1.8 kJ).")
    assert missing(comparison) == ["No price for server:cpu, so no cost: give --price cpu=PRICE,cuda=PRICE (money "
                                   "per hour per device) to trainspeed run, report or compare."]
    for name, result in (("laptop", laptop), ("server", server)):
        result.write(tmp_path / name / "results.json")
    code = main(["compare", str(tmp_path / "laptop"), str(tmp_path / "server"), "--baseline", "laptop:cpu",
                 "--price", "cpu=0.1,cuda=0.4", "--currency", "USD", "--out", str(tmp_path / "report")])
    out = capsys.readouterr().out
    assert code == 0 and "lessperepoch(0.000444USDvs0.00100USD)atthepricesgiven" in "".join(out.split())
    assert "Is it worth it?" in (tmp_path / "report" / "report.md").read_text()


def test_the_system_chart_draws_sampled_power_and_utilization(tmp_path):
    comparison = compare([(None, seeds_with_energy())])
    path = system_chart(comparison, tmp_path / "system.png")
    assert path is not None and path.stat().st_size > 5000
    bare = fx.run_result([fx.case("cnn", "cpu", 36.0)], gpus=False)
    assert system_chart(compare([(None, bare)]), tmp_path / "none.png") is None


def test_a_run_records_each_cases_energy_and_its_report_gives_the_verdict(tmp_path, monkeypatch):
    import trainspeed

    monkeypatch.setattr(power, "POWERCAP", tmp_path / "absent")
    result = trainspeed.run(models="mlp:1", devices=["cpu"], dataset="synthetic", limit=96, epochs=2,
                            synthetic_shape="8x8x3", inference=False, isolate=False, out=str(tmp_path / "run"),
                            cpu_watts=50,
                            price="cpu=0.36", currency="EUR")
    (case,) = result.cases
    assert case.energy.estimate and case.energy.average_w == pytest.approx(50.0)
    assert case.energy.joules_per_epoch == pytest.approx(50.0 * case.steady_epoch_s)
    assert case.repeats[0].energy == case.energy
    trainspeed.report(result, tmp_path / "report")
    report = (tmp_path / "report" / "report.md").read_text()
    assert "### Is it worth it?" in report and "at 0.36 EUR per hour it costs" in report
    assert "prices: cpu 0.36 EUR/h" in report and "CPU power for an energy estimate: 50 W" in report


def test_prices_given_twice_add_up_and_a_currency_alone_is_refused(tmp_path, capsys):
    result = priced(seeds_with_energy(), {"cpu": 0.5}, "USD")
    result.write(tmp_path / "run" / "results.json")
    code = main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "a"), "--price", "cpu=1", "--price",
                 "cuda=2"])
    assert code == 0 and "prices: cpu 1/h, cuda 2/h" in (tmp_path / "a" / "report.md").read_text()
    capsys.readouterr()
    # A currency alone would put a new name on amounts given in another.
    assert main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "b"), "--currency", "EUR"]) == 2
    assert capsys.readouterr().err == ("trainspeed: error: --currency names the unit of --price: give the prices "
                                       "too, e.g. --price cpu=0.05,cuda=2.49 --currency USD\n")


@pytest.mark.parametrize("config, message", [
    ({"prices": {"cpu": "abc"}}, "config: prices must map devices to prices per hour"),
    ({"prices": "cpu=1"}, "config: prices must map devices"),
    ({"cpu_watts": "50"}, "config: --cpu-watts must be the CPU's power in watts, more than 0, got '50'"),
])
def test_a_results_file_with_bad_energy_settings_is_a_one_line_error(tmp_path, capsys, config, message):
    result = seeds_with_energy()
    result.config.update(config)
    result.write(tmp_path / "run" / "results.json")
    assert main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_data_parallel_cases_and_batch_sweeps_are_named_in_the_verdict():
    one = fx.case("cnn", "cpu", 30.0, world_size=1, backend="gloo")
    two = fx.case("cnn", "cpu:2", 20.0, world_size=2, backend="gloo")
    other = fx.case("cnn", "cpu", 10.0, batch=256)
    comparison = compare([(None, priced(fx.run_result([one, two, other], gpus=False), {"cpu": 0.36}))])
    assert [s.split(" in ")[0] for s in verdicts(comparison)] == [
        "The CPU trains the cnn at batch 32 as 1 rank (gloo)",
        f"The {fx.CPU_NAME} trains the cnn at batch 32 as 2 ranks (gloo)", "The CPU trains the cnn at batch 256"]


def test_a_resume_keeps_the_runs_prices_and_says_the_new_ones_are_ignored(tmp_path, capsys):
    out = str(tmp_path / "run")
    common = ["--devices", "cpu", "--dataset", "synthetic", "--limit", "64", "--epochs", "1", "--models", "mlp:1",
              "--synthetic-shape", "8x8x1", "--no-inference", "--in-process"]
    assert main(["run", *common, "--out", out, "--price", "cpu=2", "--currency", "EUR"]) == 0
    capsys.readouterr()
    assert main(["run", "--resume", out, "--price", "cpu=9"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "--price, --currency and --cpu-watts are ignored with --resume" in err
    config = json.loads((tmp_path / "run" / "results.json").read_text())["config"]
    assert (config["prices"], config["currency"]) == ({"cpu": 2.0}, "EUR")


def test_the_verdict_carries_the_caveats_its_headline_carries():
    """Against a --time-budget run it said '15.1x slower … costs 15.1x more' without 'projected' or 'under load'."""
    cpu, gpu = seeds_with_energy().cases
    cpu = replace(cpu, projected=True, measured_steps=40, under_load=True)
    comparison = compare([(None, priced(fx.run_result([cpu, gpu]), {"cpu": 0.5, "cuda": 2.49}))])
    (verdict,) = verdicts(comparison)
    headline = next(sentence for sentence in headlines(comparison) if "faster than" in sentence)
    for caveat in ("projected by --time-budget from the CPU's 40 steps",
                   "the CPU was measured while other programs used the CPU"):
        assert caveat in headline and caveat in verdict, (caveat, headline, verdict)
    (alone,) = verdicts(compare([(None, priced(fx.run_result([cpu], gpus=False), {"cpu": 0.5}))]))
    assert "projected by --time-budget" in alone and "measured while other programs used the CPU" in alone
