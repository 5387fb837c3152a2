"""Fault injection for tests: TRAINSPEED_FAULT makes a case fail the way real ones do.

`kill:MODEL` (the process kills itself mid-epoch), `raise:MODEL` (a bug), `oom:MODEL` (out of
memory at the training step), `oom-above:N` (any batch larger than N runs out of memory) and
`stall:MODEL` (the process is stopped with SIGSTOP for STALL_SECONDS mid-epoch, once, and a
helper process continues it with SIGCONT: what Ctrl-Z or a frozen machine does to a run) and
`hang:MODEL` (the process sleeps for good: a rank that stops answering). In a data-parallel job,
`kind:MODEL@RANK` strikes that rank alone. A hang first creates the file TRAINSPEED_FAULT_MARK names,
if set: the event a test waits on before it acts on the hung run, instead of a guessed sleep.
Unset, as for every user, it does nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import torch

VARIABLE = "TRAINSPEED_FAULT"
MARK_VARIABLE = "TRAINSPEED_FAULT_MARK"
STALL_SECONDS = 1.5
_stalled = False


def _fault() -> tuple[str, str] | None:
    value = os.environ.get(VARIABLE, "")
    kind, _, target = value.partition(":")
    return (kind, target) if kind else None


def at_training_step(model: str, rank: int | None = None) -> None:
    fault = _fault()
    if fault is None:
        return
    kind, target = fault
    target_model, _, target_rank = target.partition("@")
    if target_model != model or (target_rank and (rank is None or int(target_rank) != rank)):
        return
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "raise":
        raise RuntimeError(f"injected fault in the {model}")
    if kind == "oom":
        raise torch.OutOfMemoryError("injected: CUDA out of memory. Tried to allocate 2.00 GiB")
    if kind == "stall":
        _stall_once()
    if kind == "hang":
        if os.environ.get(MARK_VARIABLE):
            open(os.environ[MARK_VARIABLE], "a").close()
        while True:
            time.sleep(60)


def _stall_once() -> None:
    global _stalled
    if _stalled:
        return
    _stalled = True
    subprocess.Popen(["/bin/sh", "-c", f"sleep {STALL_SECONDS}; kill -CONT {os.getpid()}"])
    os.kill(os.getpid(), signal.SIGSTOP)


def at_allocation(batch_size: int) -> None:
    fault = _fault()
    if fault is not None and fault[0] == "oom-above" and batch_size > int(fault[1]):
        raise torch.OutOfMemoryError(f"injected: out of memory at batch size {batch_size}")
