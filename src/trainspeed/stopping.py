"""What stops a run from outside: Ctrl-C, the SIGTERM and SIGHUP that `timeout`, `docker stop`, systemd,
Slurm and a closing terminal send, and (under torchrun) the loss of another rank of the job. All end a
run the same way: the running case is marked interrupted, the finished ones are kept and reported, and
the run can be finished with --resume."""

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


class PeerLost(KeyboardInterrupt):
    """Another rank of this torchrun job is gone or silent: the job cannot go on, so the run stops here."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


def ignore_stops() -> None:
    """SIGTERM and SIGHUP ignored from now until stops_as_interrupts' block ends: a run that is stopping
    cleans up (a child process stopped, the results written) without a second stop cutting that short."""
    if threading.current_thread() is threading.main_thread():
        for number in STOPPING:
            signal.signal(number, signal.SIG_IGN)


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
        ignore_stops()
        raise Stopped(signum)

    for number in STOPPING:
        signal.signal(number, stop)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def how(interrupt: KeyboardInterrupt) -> str:
    """'Ctrl-C', 'SIGTERM', 'SIGHUP', or the lost rank: what stopped the run, in its message."""
    if isinstance(interrupt, PeerLost):
        return interrupt.cause
    return signal.Signals(interrupt.signum).name if isinstance(interrupt, Stopped) else "Ctrl-C"


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """The shell's convention for a signal, 128 + its number: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP;
    1 for a lost rank, a failure of the job rather than a signal to this process."""
    if isinstance(interrupt, PeerLost):
        return 1
    return 128 + (interrupt.signum if isinstance(interrupt, Stopped) else signal.SIGINT)
