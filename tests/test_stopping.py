"""The signals that stop a run, in this process: SIGTERM and SIGHUP become the Ctrl-C path."""

import os
import signal

import pytest

from trainspeed import stopping


@pytest.mark.parametrize("number, code, name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGHUP, 129, "SIGHUP")])
def test_sigterm_and_sighup_interrupt_as_ctrl_c_does_and_a_second_cannot_cut_the_clean_up(number, code, name):
    before = signal.getsignal(number)
    with pytest.raises(KeyboardInterrupt) as raised, stopping.stops_as_interrupts():
        try:
            os.kill(os.getpid(), number)
            signal.sigtimedwait([], 0)  # let the handler run here, where the run would be
            raise AssertionError("the signal did not interrupt")
        finally:
            os.kill(os.getpid(), number)  # during the clean-up: ignored, so the clean-up finishes
    assert isinstance(raised.value, stopping.Stopped) and raised.value.signum == number
    assert (stopping.how(raised.value), stopping.exit_code(raised.value)) == (name, code)
    assert signal.getsignal(number) == before  # the process's own handling is back afterwards
    assert (stopping.how(KeyboardInterrupt()), stopping.exit_code(KeyboardInterrupt())) == ("Ctrl-C", 130)
