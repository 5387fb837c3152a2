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


@pytest.mark.parametrize("error, cause", [
    # What gloo raises on rank 0 when rank 1 was killed (PyTorch 2.13), wrapped once per callback.
    (RuntimeError("Got the following error when running the callback: RuntimeError: Got the following error when "
                  "running the callback: RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/"
                  "pair.cc:537] Read error [127.0.0.1]:51404: Connection reset by peer. This is typically caused"),
     "the loss of another rank of the job (Read error [127.0.0.1]:51404: Connection reset by peer."),
    # ... and when rank 1 stopped answering past --dist-timeout.
    (RuntimeError("[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] Timed out "
                  "waiting 5000ms for recv operation to complete"),
     "a rank of the job that stopped answering (Timed out waiting 5000ms for recv operation to complete; raise "
     "--dist-timeout if the ranks are only slow)"),
])
def test_a_lost_rank_stops_the_run_as_a_signal_would_and_its_clean_up_is_not_cut_short(error, cause):
    from trainspeed.distributed import peers_lost_stop_the_run

    before = signal.getsignal(signal.SIGTERM)
    with stopping.stops_as_interrupts():
        with pytest.raises(stopping.PeerLost) as raised, peers_lost_stop_the_run():
            raise error
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN  # torchrun's SIGTERM to this rank follows
    assert raised.value.cause.startswith(cause)
    assert stopping.how(raised.value) == raised.value.cause and stopping.exit_code(raised.value) == 1
    assert signal.getsignal(signal.SIGTERM) == before


def test_an_error_of_our_own_is_not_taken_for_a_lost_rank():
    from trainspeed.distributed import peers_lost_stop_the_run

    with pytest.raises(RuntimeError, match="mat1 and mat2 shapes cannot be multiplied"), peers_lost_stop_the_run():
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (32x192 and 3072x3000)")
