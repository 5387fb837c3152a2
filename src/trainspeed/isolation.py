"""Work in its own process, so a crash costs only that work: both ends of the protocol, here.

The parent writes a job as JSON to `python -m trainspeed.isolation`; the child answers with JSON
lines on its original standard output (progress, then a result), and anything else it prints
goes to standard error, which the parent keeps to explain a crash. A child sees only the GPU
its job runs on (as cuda:0), so nothing in it can touch another GPU.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .cases import CaseKey, Workload
from .config import RunConfig
from .data import Dataset
from .errors import TrainspeedError
from .machine.stalls import StallWatch
from .results import Failure, Measurement, StartupCost
from .schema import validated


@dataclass(frozen=True)
class Job:
    """What a child is asked to do: measure one repeat of a case, or a device's peaks."""

    kind: str  # "repeat" or "peaks"
    config: dict
    device: str  # the device as the parent and the results name it
    key: dict | None = None
    repeat: int = 1
    precisions: list[str] = field(default_factory=list)  # for "peaks"
    layout_chosen: list[str] | None = None  # the case's layout and its reason, from its first repeat
    kernels: dict[str, str] | None = None  # the case's CPU kernels, from its first repeat
    counts: dict | None = None  # a Keras case: what trainspeed counts on its own model (keras_engine/counts.py)


def engine_of(key: dict | None) -> str:
    """The engine of a job's case key, as JSON ("trainspeed" for peaks and older keys)."""
    return key["workload"].get("engine", "trainspeed") if key else "trainspeed"


def key_from_dict(data: dict) -> CaseKey:
    work = dict(data["workload"], image_shape=tuple(data["workload"]["image_shape"]))
    return CaseKey(Workload(**work), data["device"])


def child_config(config: RunConfig, data: Dataset) -> RunConfig:
    """The child loads exactly the data the parent found, without searching or downloading. It keeps the
    run's folder (held by the parent) only to save its trained network there (--save-models)."""
    child = replace(config, out=config.out if config.save_models else None, download=False)
    if data.name == "synthetic":
        return replace(child, dataset="synthetic")
    return replace(child, dataset=data.name, data_dir=data.source)


# --- the parent's end ---------------------------------------------------------------------

def measure_in_child(config: RunConfig, key: CaseKey, repeat: int, data: Dataset, progress,
                     layout_chosen: tuple[str, str] | None = None, kernels: dict[str, str] | None = None,
                     device_name: str = "") -> Measurement | Failure:
    counts = None
    if key.workload.engine != "trainspeed":
        from .keras_engine.backends import missing
        from .keras_engine.counts import counts_for

        reason = missing(key.workload.engine)
        if key.device.partition(":")[0] not in ("cpu", "cuda"):
            reason = f"the Keras engines train on the CPU or a CUDA GPU here, not on {key.device}"
        if reason:  # said before a process is started for nothing; the run goes on
            return Failure(reason)
        counts = counts_for(key, data.num_classes, device_name)
    job = Job("repeat", asdict(child_config(config, data)), key.device, asdict(key), repeat,
              layout_chosen=list(layout_chosen) if layout_chosen else None, kernels=kernels, counts=counts)
    result = _spawn(job, progress)
    if isinstance(result, Failure):
        return result
    return validated(Measurement, result["measurement"], "the case's process")


def peaks_in_child(config: RunConfig, device: str, precisions: list[str], progress) -> dict[str, dict]:
    """The device's measured peaks per precision, measured in a child so that the parent never
    holds a GPU context while cases run (an exclusive-process GPU admits one)."""
    result = _spawn(Job("peaks", asdict(config), device, precisions=list(precisions)), progress)
    if isinstance(result, Failure):
        progress.message(f"[yellow]peaks of {device} not measured:[/] {result.reason}; MFU is left out")
        return {}
    return result["peaks"]


def child_environment(device: str) -> tuple[dict[str, str], str]:
    """The child's environment, and the name it knows the device by there."""
    from .machine.devices import isolate_gpu

    # The child must import this same trainspeed, installed or run from a source tree.
    package_root = str(Path(__file__).resolve().parents[1])
    paths = [package_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}
    return isolate_gpu(device, environ)


def _spawn(job: Job, progress) -> dict | Failure:
    """The child's answer, or a Failure: the reason it gave, or why it ended without answering."""
    environ, local = child_environment(job.device)
    engine = engine_of(job.key)
    if engine != "trainspeed":
        from .keras_engine.backends import process_environment

        environ = process_environment(engine, local, environ)
    message = json.dumps({**asdict(job), "local_device": local, "spawned_at": time.time()})
    result: dict | None = None
    with tempfile.TemporaryFile("w+") as errors:
        try:
            child = subprocess.Popen([sys.executable, "-m", "trainspeed.isolation"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=errors, text=True, env=environ)
        except OSError as error:
            return Failure(f"cannot start a process for the case ({sys.executable}: {error.strerror or error}); "
                           "check that this Python can run, or use --in-process")
        try:
            child.stdin.write(message)
            child.stdin.close()
            for line in child.stdout:
                result = handle_event(line, progress) or result
            code = child.wait()
        except BaseException:
            _stop(child)
            raise
        if result is not None:
            return validated(Failure, result["failure"], "the case's process") if "failure" in result else result
        errors.seek(0)
        lines = [line.rstrip() for line in errors.read().splitlines() if line.strip()]
        if lines and lines[0].startswith("Traceback"):
            progress.message("[dim]" + "\n".join(lines[-12:]) + "[/]")
        return Failure(describe_exit(code, lines[-1] if lines else ""))


def handle_event(line: str, progress) -> dict | None:
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    kind = event.get("event")
    if kind == "epoch":
        progress.start_epoch(event["label"], event["steps"], event.get("images"))
    elif kind == "progress":
        progress.update(event["step"], event["steps"], event["loss"], event["accuracy"], event.get("elapsed_s"))
    elif kind == "message":
        progress.message(event["text"])
    elif kind == "result":
        return event
    return None


def describe_exit(code: int, last_line: str) -> str:
    """Why a child ended without a result, in words."""
    if code < 0:
        name = signal.Signals(-code).name
        why = {"SIGKILL": " (often the kernel's out-of-memory killer: try a smaller --batch-size)",
               "SIGSEGV": " (a crash in native code)"}.get(name, "")
        return f"the case's process was killed by {name}{why}"
    return f"the case's process failed with exit status {code}" + (f": {last_line}" if last_line else "")


def _stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# --- the child's end ----------------------------------------------------------------------

class EventProgress:
    """The progress interface of the parent's bars, sent to the parent as events."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self._lock = threading.Lock()  # Keras may report progress from another thread
        self._started = time.perf_counter()

    def emit(self, **event) -> None:
        with self._lock:
            self._stream.write(json.dumps(event) + "\n")
            self._stream.flush()

    def start_epoch(self, label: str, steps: int, images: int | None = None) -> None:
        self._started = time.perf_counter()
        self.emit(event="epoch", label=label, steps=steps, images=images)

    def update(self, step: int, steps: int, loss: float, accuracy: float) -> None:
        # The epoch's time so far, read here: events can reach the parent in bunches.
        self.emit(event="progress", step=step, steps=steps, loss=loss, accuracy=accuracy,
                  elapsed_s=time.perf_counter() - self._started)

    def message(self, text: str) -> None:
        self.emit(event="message", text=text)


def _measure_peaks(job: dict, device) -> dict:
    from .machine.peaks import measure_peaks
    from .plan import peaks_key

    found = {}
    for mode in job["precisions"]:
        found[peaks_key(job["device"], mode)] = asdict(measure_peaks(device, mode))
    return {"peaks": found}


# Launching Python may wait on a cold disk for a while; a wait longer than this was a stop.
_START_WAIT_S = 1.0


def _process_start(job: dict) -> tuple[float, float]:
    """(seconds from launch to now, seconds of them this process did not run).

    Launching Python and importing trainspeed (and torch, for its engine): what every fresh process
    pays first. Before the watch ran, only the CPU time it took tells a stop from work (imports run
    on one core).
    """
    process_s = time.time() - job["spawned_at"]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return process_s, process_s - (usage.ru_utime + usage.ru_stime)


def _measure_repeat(job: dict, device, progress: EventProgress, watch: StallWatch) -> dict:
    from .measure import measure_repeat
    from .plan import load_data

    process_s, waited_s = _process_start(job)
    config = RunConfig.from_dict(job["config"])
    data, load_s = load_data(config)
    outcome, _ = measure_repeat(config, key_from_dict(job["key"]), job["repeat"], data, device, progress,
                                startup=StartupCost(process_s=process_s, data_s=load_s),
                                layout_chosen=tuple(job["layout_chosen"]) if job["layout_chosen"] else None,
                                kernels=job.get("kernels"), watch=watch)
    return _answer(outcome, process_s, waited_s)


def _measure_keras_repeat(job: dict, progress: EventProgress, watch: StallWatch) -> dict:
    from .keras_engine.measure import measure_keras_repeat
    from .plan import load_data

    process_s, waited_s = _process_start(job)
    outcome = measure_keras_repeat(RunConfig.from_dict(job["config"]), key_from_dict(job["key"]), job["repeat"],
                                   job["local_device"], progress, watch=watch,
                                   startup=StartupCost(process_s=process_s), counts=job["counts"],
                                   load_data=load_data)
    return _answer(outcome, process_s, waited_s)


def _answer(outcome: Measurement | Failure, process_s: float, waited_s: float) -> dict:
    if isinstance(outcome, Failure):
        return {"failure": asdict(outcome)}
    if waited_s > _START_WAIT_S:
        outcome = replace(outcome, startup=replace(outcome.startup, process_s=None), warnings=outcome.warnings + (
            f"the case's process waited {waited_s:.1f} s of its {process_s:.1f} s start without running (stopped, "
            "or reading from a slow disk): its Python start-up time is left out",))
    return {"measurement": asdict(outcome)}


def _exit_with_parent(interval_s: float = 0.5) -> None:
    """End this process once its parent is gone (killed, say): nobody would read its answer, and its
    load would spoil the cases of a run resumed straight away. Without this it ran on until its next
    progress line met the closed pipe."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def main() -> int:
    # Ctrl-C and a closing terminal's SIGHUP reach the whole process group; the parent decides what
    # happens to this work (it stops this process, and marks the case interrupted).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _exit_with_parent()
    events = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    progress = EventProgress(events)
    watch = StallWatch().__enter__()  # as early as can be: a stop anywhere spoils what this process measures
    job = json.load(sys.stdin)
    try:
        answer = _work(job, progress, watch)
    except TrainspeedError as error:
        answer = {"failure": asdict(Failure(str(error)))}
    progress.emit(event="result", **answer)
    return 0


def _work(job: dict, progress: EventProgress, watch: StallWatch) -> dict:
    if engine_of(job["key"]) != "trainspeed":
        # No torch, and none of trainspeed's process settings: the backend runs as a Keras user runs it.
        return _measure_keras_repeat(job, progress, watch)
    import torch

    from .machine import devices

    devices.configure_process()
    devices.set_cpu_threads(RunConfig.from_dict(job["config"]).cpu_threads)
    device = torch.device(job["local_device"])
    with devices.use(device):
        return (_measure_peaks(job, device) if job["kind"] == "peaks"
                else _measure_repeat(job, device, progress, watch))


if __name__ == "__main__":
    sys.exit(main())
