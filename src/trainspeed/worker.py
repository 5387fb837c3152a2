"""One repeat of one case, in its own process: `python -m trainspeed.worker` reads the job as JSON.

Events go to the parent as JSON lines on the original standard output; anything else printed
goes to standard error, which the parent keeps to explain a crash.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import asdict

from . import devices
from .config import RunConfig
from .errors import TrainspeedError
from .results import StartupCost
from .runner import CaseSpec, execute_case, load_data_timed


class EventProgress:
    """The progress interface of EpochProgress, sent to the parent as events."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def emit(self, **event) -> None:
        self._stream.write(json.dumps(event) + "\n")
        self._stream.flush()

    def start_epoch(self, label: str, steps: int) -> None:
        self.emit(event="epoch", label=label, steps=steps)

    def update(self, step: int, steps: int, loss: float, accuracy: float) -> None:
        self.emit(event="progress", step=step, steps=steps, loss=loss, accuracy=accuracy)

    def message(self, text: str) -> None:
        self.emit(event="message", text=text)


def main() -> int:
    # Ctrl-C reaches the whole process group; the parent decides what happens to this case.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    events = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    progress = EventProgress(events)
    job = json.load(sys.stdin)
    # Launching Python and importing torch and trainspeed: what every fresh process pays first.
    process_s = time.time() - job["spawned_at"] if "spawned_at" in job else None
    config = RunConfig.from_dict(job["config"])
    spec = CaseSpec(**job["case"])
    try:
        devices.configure_process()
        devices.set_cpu_threads(config.cpu_threads)
        data, load_s = load_data_timed(config)
        startup = StartupCost(process_s=process_s, data_s=load_s)
        case, _ = execute_case(config, spec, job["repeat"], data, progress, startup=startup)
    except TrainspeedError as error:
        progress.emit(event="failed", reason=str(error), dataset=config.dataset)
        return 0
    progress.emit(event="result", case=asdict(case))
    return 0


if __name__ == "__main__":
    sys.exit(main())
