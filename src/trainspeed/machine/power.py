"""Energy meters, and PowerLog, which reads one around each timed epoch and in the background.

A GPU is read through NVIDIA's management library (the `nvidia-ml-py` package, `pip install
"trainspeed[nvml]"`): its total-energy counter, or where the board has none, its power readings
integrated and labelled so. A CPU is read through Linux powercap (RAPL package and DRAM domains),
which most virtual machines do not expose and recent kernels let root alone read. Where neither
is there, the user's --cpu-watts gives an estimate labelled as one; else the case says why not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..energy import EnergyFigures, Sample, counter_delta, figures, trapezoid

POWERCAP = Path("/sys/class/powercap")
# Fast enough for sub-second epochs and to see every RAPL wrap (minutes apart at the least);
# one sample costs microseconds in a thread that sleeps between them.
SAMPLE_INTERVAL_S = 0.1
NVML_EXTRA = 'pip install "trainspeed[nvml]"'


class Meter:
    """One device's meter. energy_j: cumulative joules from any origin, or None where there is no
    counter (then PowerLog integrates power_w). Reads may raise: the device stopped answering."""

    source = ""
    estimate = False
    has_counter = True

    def energy_j(self) -> float | None:
        return None

    def power_w(self) -> float | None:
        return None

    def utilization(self) -> float | None:
        return None


class NvmlMeter(Meter):
    """A board through NVML: energy in millijoules, power in milliwatts. Power and utilization are
    extras where the counter is there: a board that refuses them (vGPU, some GeForce) still counts."""

    def __init__(self, nvml, handle) -> None:
        self.nvml, self.handle = nvml, handle

        def answers(call) -> bool:
            try:
                call(handle)
                return True
            except nvml.NVMLError:  # NotSupported, FunctionNotFound (an old driver), ...
                return False

        self.has_counter = answers(nvml.nvmlDeviceGetTotalEnergyConsumption)
        self.has_power = answers(nvml.nvmlDeviceGetPowerUsage)
        self.has_utilization = answers(nvml.nvmlDeviceGetUtilizationRates)
        self.source = ("NVML energy counter (GPU board)" if self.has_counter
                       else "NVML power, integrated (this GPU has no energy counter)")

    def energy_j(self) -> float | None:
        return self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1e3 if self.has_counter else None

    def power_w(self) -> float | None:
        if not self.has_power:
            return None
        try:
            return self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1e3
        except self.nvml.NVMLError:
            if not self.has_counter:
                raise  # the energy rests on it
            return None

    def utilization(self) -> float | None:
        if not self.has_utilization:
            return None
        try:
            return self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu / 100
        except self.nvml.NVMLError:
            return None


class RaplMeter(Meter):
    """The powercap zones' counters summed, each delta taken with its own wrap-around. Read through
    a PowerLog, whose lock keeps the sampler and the epoch marks from counting a delta twice."""

    def __init__(self, zones: list[tuple[str, Path, float]]) -> None:
        self.zones = zones  # (name, energy_uj file, max_energy_range_uj)
        self.source = f"RAPL {' + '.join(name for name, _, _ in zones)} (whole CPU socket)"
        self._last = [self._read(path) for _, path, _ in zones]
        self._total_uj = 0.0

    @staticmethod
    def _read(path: Path) -> float:
        return float(path.read_text())

    def energy_j(self) -> float:
        for index, (_, path, counter_range) in enumerate(self.zones):
            now = self._read(path)
            self._total_uj += counter_delta(self._last[index], now, counter_range)
            self._last[index] = now
        return self._total_uj / 1e6


class WattsEstimate(Meter):
    def __init__(self, watts: float) -> None:
        self.watts = watts
        self.estimate = True
        self.source = f"estimate: --cpu-watts {watts:g} W x time"

    def energy_j(self) -> float:
        return self.watts * time.perf_counter()

    def power_w(self) -> float:
        return self.watts


def rapl_zones(root: Path | None = None) -> list[tuple[str, Path, float]] | str:
    """Each package's zone and its DRAM subzone (core and uncore lie inside the package), or why none."""
    root = root or POWERCAP
    if not root.is_dir():
        return f"{root} does not exist (no powercap: usual in a virtual machine or a container)"
    zones, unreadable = [], []
    for zone in sorted(root.glob("intel-rapl:*")):
        try:
            name = (zone / "name").read_text().strip()
        except OSError:
            continue
        if not (name.startswith("package") or name == "dram"):
            continue
        try:
            float((zone / "energy_uj").read_text())
            counter_range = float((zone / "max_energy_range_uj").read_text())
        except PermissionError:
            unreadable.append(str(zone / "energy_uj"))
            continue
        except (OSError, ValueError):
            continue
        label = name if name.startswith("package") else f"{name} of package {zone.name.split(':')[1]}"
        zones.append((label, zone / "energy_uj", counter_range))
    if unreadable and not zones:
        return (f"{unreadable[0]} is readable by root alone (Linux 5.10 and later); run as root or "
                f"sudo chmod a+r {root}/intel-rapl:*/energy_uj {root}/intel-rapl:*:*/energy_uj")
    if not zones:
        return f"no RAPL package zone under {root} (usual in a virtual machine)"
    return zones


def _nvml_meter(device: str, uuid: str) -> Meter | str:
    if uuid.startswith("MIG-"):
        return "a MIG slice has no energy or power reading of its own (NVML reads the whole GPU)"
    try:
        import pynvml
    except ImportError:
        return f"nvidia-ml-py is not installed: {NVML_EXTRA}"
    try:
        pynvml.nvmlInit()
        # Bytes: older pynvml copies (the `pynvml` package) take no str here.
        meter = NvmlMeter(pynvml, pynvml.nvmlDeviceGetHandleByUUID(uuid.encode()))
    except Exception as error:  # noqa: BLE001 - NVMLError, or an old pynvml's own errors: a reason, not a crash
        if _is_mig_slice(pynvml, uuid):
            return _nvml_meter(device, "MIG-" + uuid.removeprefix("GPU-"))
        return f"NVML did not answer for {device} ({type(error).__name__}: {error})"
    if not (meter.has_counter or meter.has_power):
        return f"NVML gives neither energy nor power for {device} on this board"
    return meter


def _is_mig_slice(pynvml, uuid: str) -> bool:
    """Whether NVML knows `uuid` ("GPU-<uuid>", as CUDA names every device) as a MIG slice instead:
    CUDA gives a slice's UUID without the MIG- prefix that NVML files it under."""
    if not uuid.startswith("GPU-"):
        return False
    try:
        pynvml.nvmlDeviceGetHandleByUUID(("MIG-" + uuid.removeprefix("GPU-")).encode())
        return True
    except Exception:  # noqa: BLE001 - not a slice either: the first error is the reason
        return False


def meter_for(device: str, cpu_watts: float | None = None, gpu: tuple[str, str | None] | None = None) -> Meter | str:
    """The meter for `device` ("cpu", "cuda:0"), or the reason its energy is not measured. `gpu`: its
    maker and NVML's name for it (machine/devices.gpu_identity), found where torch is at hand."""
    kind = device.split(":")[0]
    if kind == "cuda":
        maker, uuid = gpu or ("", None)
        if maker == "amd":
            return "AMD GPUs: trainspeed reads energy through NVIDIA's NVML only (amdsmi is not supported yet)"
        return _nvml_meter(device, uuid) if uuid else f"no NVML identity known for {device}"
    if kind == "mps":
        return "Apple GPUs give no energy counter to programs (powermetrics needs root and samples the whole chip)"
    if kind != "cpu":
        return f"no energy meter for {kind} devices"
    zones = rapl_zones()
    if isinstance(zones, list):
        return RaplMeter(zones)
    if cpu_watts:
        return WattsEstimate(cpu_watts)
    return f"{zones}; give --cpu-watts W (e.g. the CPU's TDP) for an estimate"


class PowerLog:
    """Reads a meter at each timed epoch's ends (`epoch()`, or `epoch_started` and `epoch_ended`
    around the timer, the device idle) and in a background thread every SAMPLE_INTERVAL_S, for
    power, utilization and RAPL's wrap-around. A read that fails ends the log with the reason."""

    def __init__(self, meter: Meter | str) -> None:
        self.meter = meter if isinstance(meter, Meter) else None
        self.reason = meter if isinstance(meter, str) else None
        self.trace: list[Sample] = []
        self.epoch_j: list[float] = []
        self.epoch_spans: list[tuple[float, float]] = []  # each epoch's marks, in the trace's seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._origin = time.perf_counter()
        self._lock = threading.Lock()  # the sampler and the epoch marks both read
        self._epoch_from: tuple[float, float] | None = None  # (seconds, joules) at the epoch's start
        self._last_counter: tuple[float, float] | None = None  # (seconds, joules): power between counter reads
        self._last_power: tuple[float, float] | None = None  # (seconds, watts): a meter without a counter
        self._integrated_j = 0.0

    def __enter__(self) -> PowerLog:
        if self.meter is not None:
            self._origin = time.perf_counter()
            self._read(sample=True)
        if self.meter is not None and not self.meter.estimate:  # an estimate has nothing to sample
            self._thread = threading.Thread(target=self._sample, name="trainspeed-power", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)  # a read hung in the driver must not hang the case

    def _fail(self, error: BaseException) -> None:
        if self.reason is None:
            self.reason = f"the meter stopped answering during the case ({type(error).__name__}: {error})"
        self.meter = None

    def _read(self, sample: bool) -> tuple[float, float] | None:
        """Read the meter: (seconds, cumulative joules) now. A sample also reads power and utilization
        into the trace; an epoch's mark reads only what its energy needs, to keep the window tight."""
        with self._lock:
            meter = self.meter
            if meter is None:
                return None
            try:
                now = time.perf_counter() - self._origin
                joules = meter.energy_j() if meter.has_counter else None
                watts = meter.power_w() if sample or not meter.has_counter else None
                busy = meter.utilization() if sample else None
            except Exception as error:  # noqa: BLE001 - NVMLError_GpuIsLost, an unreadable file: the log ends
                self._fail(error)
                return None
            if not meter.has_counter and watts is not None:
                if self._last_power is not None:
                    self._integrated_j += trapezoid(*self._last_power, now, watts)
                self._last_power = (now, watts)
                joules = self._integrated_j
            if sample:
                if watts is None and joules is not None:
                    watts = self._counter_power(now, joules)
                self.trace.append((round(now, 3), watts, busy))
            return None if joules is None else (now, joules)

    def _counter_power(self, now: float, joules: float) -> float | None:
        """Power from two counter reads at least a sampling interval apart: RAPL counts in steps of
        about a millisecond, so two reads microseconds apart would give 0 W or thousands."""
        last = self._last_counter
        if last is None or now - last[0] >= SAMPLE_INTERVAL_S / 2:
            self._last_counter = (now, joules)
        if last is None or now - last[0] < SAMPLE_INTERVAL_S / 2:
            return None
        return (joules - last[1]) / (now - last[0])

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S) and self.meter is not None:
            self._read(sample=True)

    def epoch_started(self) -> None:
        self._epoch_from = self._read(sample=False)

    def epoch_ended(self) -> None:
        after = self._read(sample=False)
        if self._epoch_from is not None and after is not None:
            self.epoch_j.append(after[1] - self._epoch_from[1])
            self.epoch_spans.append((round(self._epoch_from[0], 3), round(after[0], 3)))  # as the trace's times

    @contextmanager
    def epoch(self) -> Iterator[None]:
        self.epoch_started()
        yield
        self.epoch_ended()

    def epoch_joules(self, epoch_s: list[float]) -> list[float] | None:
        """Each timed epoch's joules, or None where one went unread. An estimate's are the given power
        times the timer's own epochs, not the marks around them."""
        if self.meter is None or not epoch_s or len(self.epoch_j) != len(epoch_s):
            return None
        return [self.meter.watts * s for s in epoch_s] if isinstance(self.meter, WattsEstimate) else self.epoch_j

    def figures(self, epoch_s: list[float], images_per_epoch: int) -> EnergyFigures:
        joules = self.epoch_joules(epoch_s)
        if joules is None:
            return EnergyFigures(not_measured=self.reason or "the meter gave no reading for an epoch")
        return figures(joules, epoch_s, images_per_epoch, [] if self.meter.estimate else self.trace,
                       self.meter.source, self.meter.estimate, self.epoch_spans)
