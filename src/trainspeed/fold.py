"""A case's figures from its repeats, and what compares cases: pure functions of measurements.

Measuring code returns one frozen Measurement per repeat; everything a report shows about a
case (median, spread, roofline, speedup) is computed here, in one place, from those alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from . import energy, flops
from .cases import CaseKey
from .data_parallel import devices_in, group_of, scaling_efficiency
from .machine import stalls
from .results import CaseResult, Failure, InferenceFigures, Measurement
from .schema import mfu_left_out
from .stats import images_per_second, median_of, speedup, spread

# What a case takes from its first successful repeat (the others contribute their timings).
_FROM_FIRST_REPEAT = ("device_name", "params", "steps_per_epoch", "cpu_threads", "warmup_steps", "history",
                      "train_loss", "train_accuracy", "test_loss", "test_accuracy", "eval_s", "peak_memory_bytes",
                      "peak_host_memory_bytes", "confusion_matrix", "sample_predictions", "projected",
                      "measured_steps", "other_cpu_load", "flops_per_step", "bytes_per_step", "startup",
                      "cuda_graph", "memory_format", "layout_choice", "kernels", "kernel_choice", "engine_versions",
                      "engine_devices", "parallel")


def _identity(key: CaseKey, accuracy_meaningful: bool, epochs: int) -> dict:
    work = key.workload
    return dict(model=work.model, device=key.device, dataset=work.dataset, batch_size=work.batch_size,
                precision=work.precision, engine=work.engine, image_shape=tuple(work.image_shape),
                train_images=work.train_images, test_images=work.test_images,
                accuracy_meaningful=accuracy_meaningful, epochs=epochs, world_size=work.world_size,
                backend=work.backend, per_device_batch=work.per_device_batch)


def fold_case(key: CaseKey, repeats: Sequence[Measurement], *, repeats_wanted: int, epochs: int,
              accuracy_meaningful: bool = True, peaks: dict | None = None, failure: Failure | None = None,
              interrupted: str | None = None, device_name: str = "", session: int = 0,
              failed_repeats: Sequence[Failure] = ()) -> CaseResult:
    """The case as its repeats so far measured it; `failure` or `interrupted` end it early, and a
    repeat whose process stopped while it was timed spoils the case (machine/stalls.py). `interrupted`
    names what stopped the run: "Ctrl-C", "SIGTERM" or "SIGHUP". A later repeat
    that failed (`failed_repeats`) does not: the figures rest on the repeats that finished, and say so."""
    identity = dict(_identity(key, accuracy_meaningful, epochs), session=session)
    warnings = sorted({w for r in repeats for w in r.warnings} | set(failure.warnings if failure else ()))
    if failed_repeats and repeats:
        warnings.append(f"{len(failed_repeats)} of {repeats_wanted} repeats failed ({failed_repeats[0].reason}); the "
                        f"figures rest on the {len(repeats)} that finished")
    stalled_s = sum(r.stalled_s or 0.0 for r in repeats) if any(r.stalled_s is not None for r in repeats) else None
    ended: dict = {}
    spoiled = [r for r in repeats if stalls.spoils(r.stalled_s, sum(r.epoch_s) or r.steady_epoch_s * epochs)]
    if failure is not None:
        ended = dict(status="failed", error=failure.reason, peak_memory_bytes=failure.peak_memory_bytes,
                     memory_total_bytes=failure.memory_total_bytes, max_batch_size=failure.max_batch_size)
    elif interrupted:
        ended = dict(status="interrupted", error=f"the run was stopped by {interrupted}")
    if spoiled:  # whatever else ended it: a resume must not keep a spoiled repeat
        ended = dict(status="stalled", error=stalls.stall_reason(sum(r.stalled_s for r in spoiled)))
    if not repeats:
        return CaseResult(**identity, device_name=device_name, warnings=warnings, stalled_s=stalled_s,
                          **(ended or dict(status="partial")))
    first = repeats[0]
    measured = {name: getattr(first, name) for name in _FROM_FIRST_REPEAT}
    measured.update(history=list(first.history), kernel_choice=list(first.kernel_choice),
                    engine_devices=list(first.engine_devices),
                    model_files=[r.model_file for r in repeats if r.model_file], inference=fold_inference(repeats),
                    energy=energy.fold([r.energy for r in repeats]))
    figures = _timing(first.epoch_s, [r.steady_epoch_s for r in repeats],
                      [r.first_epoch_s for r in repeats], key.workload.train_images)
    roofline = _roofline(first, key, figures["steady_epoch_s"], peaks)
    warnings += roofline.pop("warnings", [])
    status = dict(status="ok" if len(repeats) + len(failed_repeats) >= repeats_wanted else "partial")
    values = {**identity, **measured, **figures, **roofline, **status, **ended}
    if failure is not None and failure.peak_memory_bytes is None:
        values["peak_memory_bytes"] = first.peak_memory_bytes
    return CaseResult(**values, repeats=list(repeats), warnings=warnings, stalled_s=stalled_s,
                      under_load=any(r.under_load for r in repeats))


def fold_inference(repeats: Sequence[Measurement]) -> InferenceFigures | None:
    """The repeats' inference figures as one, as their training times are: the median of each figure
    over the repeats that timed the same large batch as the first, the calls added up."""
    answered = [r.inference for r in repeats if r.inference is not None]
    if len(answered) < 2:
        return answered[0] if answered else None
    alike = [figures for figures in answered if figures.batch_size == answered[0].batch_size]
    return replace(alike[0], **{name: median_of(alike, name) for name in (
        "latency_median_s", "latency_p95_s", "first_latency_s", "images_per_s", "first_batch_s")},
        latency_calls=sum(f.latency_calls for f in alike), batch_calls=sum(f.batch_calls for f in alike))


def _timing(first_epochs: Sequence[float], steady: list[float], firsts: list[float | None], images: int) -> dict:
    """Steady time as the median over repeats; its spread over repeats, else over steady epochs."""
    median = spread(steady).median
    known_firsts = [f for f in firsts if f is not None]
    samples, spread_of = (steady, "repeats") if len(steady) > 1 else (list(first_epochs[1:]), "epochs")
    figures = dict(epoch_s=list(first_epochs), steady_epoch_s=median,
                   first_epoch_s=spread(known_firsts).median if known_firsts else None,
                   images_per_s=images_per_second(images, median))
    if len(samples) > 1:
        summary = spread(samples)
        figures.update(steady_min_s=summary.minimum, steady_max_s=summary.maximum, steady_cv=summary.cv,
                       spread_of=spread_of, noisy=summary.noisy)
    return figures


def _roofline(first: Measurement, key: CaseKey, steady_epoch_s: float, peaks: dict | None) -> dict:
    """Achieved FLOP/s, MFU and the floor epoch time, from the case's work and the device's peaks."""
    if not (peaks and first.flops_per_step and steady_epoch_s):
        return {}
    return roofline(first.flops_per_step, first.bytes_per_step, key.workload.train_images,
                    key.workload.batch_size, steady_epoch_s, peaks)


def roofline(flops_per_step: float, bytes_per_step: float, train_images: int, batch_size: int,
             steady_epoch_s: float, peaks: dict) -> dict:
    """Achieved FLOP/s, MFU and the floor epoch, with `warnings` where the measured epoch shows a
    measured peak to be low: then the MFU (over 100%) and the floor are not figures, and are left out."""
    steps = train_images / batch_size  # the last partial batch counts for its share
    achieved = flops_per_step * steps / steady_epoch_s
    if peaks.get("under_load"):
        return dict(achieved_flops_per_s=achieved, mfu=None, floor_epoch_s=None,
                    warnings=["no MFU or floor shown: the device's peaks were measured while other programs used the "
                              "CPU, three times, so they read low; run again on a quiet machine"])
    mfu = flops.model_flops_utilization(achieved, peaks["matmul_flops_per_s"])
    floor = flops.epoch_floor_s(flops.StepCost(flops_per_step, bytes_per_step), steps,
                                peaks["matmul_flops_per_s"], peaks["bandwidth_bytes_per_s"])
    warnings = []
    if mfu > 1:
        warnings.append(mfu_left_out(mfu))
        mfu = None
    if floor > steady_epoch_s:
        warnings.append(f"no floor shown: the epoch ({steady_epoch_s:.3g} s) beat the floor computed from the "
                        f"measured peaks ({floor:.3g} s), so a peak was measured low (caches may hold the weights)")
        floor = None
    return dict(achieved_flops_per_s=achieved, mfu=mfu, floor_epoch_s=floor, warnings=warnings)


def with_speedups(cases: list[CaseResult]) -> list[CaseResult]:
    """Each case with its speedup over the CPU case of the same workload (None without one)."""
    cpu_times = {c.workload: c.steady_epoch_s for c in cases if c.device == "cpu" and c.ok and c.steady_epoch_s}
    updated = []
    for case in cases:
        # A group of CPU processes is the CPU: its speedup is over one rank (speedup_vs_one), not over itself.
        baseline = None if case.backend and case.device == "cpu" else cpu_times.get(case.workload)
        ratio = speedup(baseline, case.steady_epoch_s) if baseline and case.ok and case.steady_epoch_s else None
        updated.append(case if case.speedup_vs_cpu == ratio else replace(case, speedup_vs_cpu=ratio))
    return updated


def group_peaks(peaks: dict | None, key: CaseKey, nodes: int = 1) -> dict | None:
    """The ceilings a case is judged against: one device's measured peaks (a GPU group's first GPU,
    a CPU measured whole) times the devices the case holds (data_parallel.devices_in)."""
    work = key.workload
    if not peaks or not work.backend:
        return peaks
    devices_ = devices_in(key.device, work.world_size, nodes)
    scaled = ("matmul_flops_per_s", "bandwidth_bytes_per_s")
    return {name: value * devices_ if name in scaled else value for name, value in peaks.items()}


def with_scaling(cases: list[CaseResult]) -> list[CaseResult]:
    """Each data-parallel case with its speedup over its group's one-device reference, in images/s,
    and its scaling efficiency (throughput with N / (N x throughput with one))."""
    rates = {(c.key.workload, c.device): c.images_per_s for c in cases if c.ok and c.images_per_s and c.backend}
    updated = []
    for case in cases:
        work = case.workload
        if not (case.parallel and work.world_size > 1):
            updated.append(case)
            continue
        one = group_of(case.device, work.world_size).one_device()
        reference = replace(work, world_size=1, batch_size=work.batch_size // work.world_size
                            if work.per_device_batch else work.batch_size)
        base = rates.get((reference, one.device))
        figures = replace(case.parallel, one_device=one.device if base else None,
                          speedup_vs_one=case.images_per_s / base if base and case.images_per_s else None,
                          scaling_efficiency=scaling_efficiency(case.images_per_s, base, work.world_size)
                          if base and case.images_per_s else None)
        updated.append(case if figures == case.parallel else replace(case, parallel=figures))
    return updated
