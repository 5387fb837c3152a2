"""After training: how fast a trained network answers, one image at a time and in a large batch.

Latency is what a person waiting for one answer sees; throughput at a large batch is what a
server classifying a stream sees. Both time the whole of model.predict's work (scaling the
pixels, the network with dropout off, the output activation) in the case's precision, every
call on its own with the device's work finished at both ends. Each size's first call is kept
apart: a new shape pays for kernel selection and allocations once, as training's first step does.

This module holds the rules both engines follow; it imports no framework (a Keras case's process
imports no torch). trainspeed's engine calls them in engine/inference.py, Keras in keras_engine.
"""

from __future__ import annotations

from collections.abc import Callable

from .results import InferenceFigures
from .stats import percentile
from .timing import Timer

# Enough one-image calls for a 95th percentile with ten calls above it, but never long: a slow
# model (the cnn on a CPU at 1.5 ms a call) stops at the time limit with at least MIN_CALLS.
LATENCY_CALLS = 200
LATENCY_SECONDS = 0.3
MIN_CALLS = 20
# The large batch: as big as a server would use, a few calls timed.
BATCH_SIZE = 1024
BATCH_CALLS = 10
BATCH_SECONDS = 0.6
MIN_BATCH_CALLS = 3


def time_calls(timer: Timer, label: str, call: Callable[[int], object], *, most: int, least: int,
               seconds: float) -> tuple[float, list[float]]:
    """The first call's time, then each later call's: at most `most`, at least `least`, and no more
    once they add up to `seconds`. `call(n)` makes the n-th call (n from 0, the first included)."""
    with timer.measure(f"{label} first") as first:
        call(0)
    times: list[float] = []
    while len(times) < most and (len(times) < least or sum(times) < seconds):
        with timer.measure(label) as measured:
            call(len(times) + 1)
        times.append(measured.seconds)
    return first.seconds, times


def time_latency(timer: Timer, call: Callable[[int], object]) -> tuple[float, list[float]]:
    return time_calls(timer, "latency", call, most=LATENCY_CALLS, least=MIN_CALLS, seconds=LATENCY_SECONDS)


def time_batches(timer: Timer, call: Callable[[int], object]) -> tuple[float, list[float]]:
    return time_calls(timer, "throughput", call, most=BATCH_CALLS, least=MIN_BATCH_CALLS, seconds=BATCH_SECONDS)


def figures(latency: tuple[float, list[float]], batch_size: int | None,
            batches: tuple[float, list[float]] | None, note: str | None = None) -> InferenceFigures:
    """The results' record from the timed calls (`batches` None: no large batch could be measured)."""
    first_latency_s, times = latency
    rate = dict(batch_size=batch_size, images_per_s=batch_size * len(batches[1]) / sum(batches[1]),
                batch_calls=len(batches[1]), first_batch_s=batches[0]) if batches and batch_size else {}
    return InferenceFigures(latency_median_s=percentile(times, 0.5), latency_p95_s=percentile(times, 0.95),
                            latency_calls=len(times), first_latency_s=first_latency_s, note=note, **rate)


BatchAnswerer = Callable[[int], Callable[[], object]]  # a batch size -> the call answering such a batch


def measure(timer: Timer, answer_one: Callable[[int], object], batch_answerer: BatchAnswerer,
            out_of_memory: Callable[[BaseException], bool],
            recover: Callable[[], None] = lambda: None) -> InferenceFigures:
    """Latency (`answer_one(n)`: the n-th single image), then throughput at BATCH_SIZE (`batch_answerer(size)`
    prepares a batch and returns the call answering it), halved while it runs out of memory."""
    latency = time_latency(timer, answer_one)
    batch = BATCH_SIZE
    while batch is not None:
        try:
            batches = _time_batch(timer, batch_answerer, batch)
            return figures(latency, batch, batches, smaller_batch_note(BATCH_SIZE, batch))
        except Exception as error:
            if not out_of_memory(error):
                raise
        recover()  # outside the except block: the error's traceback, and the batch it holds, are gone
        batch = halved(batch)
    return figures(latency, None, None, smaller_batch_note(BATCH_SIZE, None))


def _time_batch(timer: Timer, batch_answerer: BatchAnswerer, size: int) -> tuple[float, list[float]]:
    answer_batch = batch_answerer(size)
    return time_batches(timer, lambda n: answer_batch())


def halved(batch_size: int) -> int | None:
    """The next batch to try after one ran out of memory; None once even one image did."""
    return batch_size // 2 or None


def smaller_batch_note(asked: int, used: int | None) -> str | None:
    if used == asked:
        return None
    if used is None:
        return f"no batch of images fitted in memory for the throughput figure (asked for {asked})"
    return f"batch {asked} ran out of memory; throughput measured at batch {used}"


def describe(figures: InferenceFigures) -> str:
    """'one image in 1.21 ms (p95 1.4 ms); 5,200 images/s at batch 1024', in three figures."""
    text = f"one image in {figures.latency_median_s * 1e3:.3g} ms (p95 {figures.latency_p95_s * 1e3:.3g} ms)"
    if figures.images_per_s:
        text += f"; {figures.images_per_s:,.0f} images/s at batch {figures.batch_size}"
    return text + (f" ({figures.note})" if figures.note else "")
