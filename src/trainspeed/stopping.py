"""The signals that stop a run: Ctrl-C, and the SIGTERM and SIGHUP that `timeout`, `docker stop`, systemd,
Slurm and a closing terminal send. All three end a run the same way: the running case is marked
interrupted, the finished ones are kept and reported, and the run can be finished with --resume."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOPPING = (signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the run is, as Ctrl-C raises KeyboardInterrupt."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def stops_as_interrupts() -> Iterator[None]:
    """Within: SIGTERM and SIGHUP raise Stopped in the main thread. After the first, the two are ignored
    until the block ends, so that a second one cannot cut short the clean-up the first began (a child
    process stopped, the results written)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in STOPPING}

    def stop(signum, frame) -> None:
        for number in STOPPING:
            signal.signal(number, signal.SIG_IGN)
        raise Stopped(signum)

    for number in STOPPING:
        signal.signal(number, stop)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def how(interrupt: KeyboardInterrupt) -> str:
    """'Ctrl-C', 'SIGTERM', 'SIGHUP': what stopped the run, in its message."""
    return signal.Signals(interrupt.signum).name if isinstance(interrupt, Stopped) else "Ctrl-C"


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """The shell's convention, 128 + the signal's number: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + (interrupt.signum if isinstance(interrupt, Stopped) else signal.SIGINT)
