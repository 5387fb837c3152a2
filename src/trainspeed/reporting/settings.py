"""Where and how the results were measured: the machines, and the settings of each run.

Across several files the settings sit side by side with what differs marked, because a difference
in data, image counts or versions is often the whole story behind a surprising ratio.
"""

from __future__ import annotations

from ..results import RunResult
from .document import Table
from .matching import Comparison
from .units import bytes_text

DIFFERS = " (differs)"


def machine_lines(label: str | None, result: RunResult) -> list[str]:
    env = result.environment
    cpu = env.get("cpu", {})
    prefix = f"{label}: " if label else ""
    lines = [f"{prefix}CPU: {cpu.get('model', '?')}, {cpu.get('logical_cores', '?')} logical cores, "
             f"{cpu.get('threads', '?')} threads used; PyTorch kernels {cpu.get('torch_capability', '?')}; "
             f"ISA {' '.join(cpu.get('features', [])) or 'unknown'}"
             + (f"; governor {cpu['governor']}" if cpu.get("governor") else "")]
    for gpu in env.get("gpus", []):
        memory = bytes_text(gpu.get("memory_bytes"))
        facts = ", ".join(f"{name} {gpu[key]}" for name, key in
                          (("compute capability", "compute_capability"), ("driver", "driver"),
                           ("CUDA", "cuda"), ("cuDNN", "cudnn")) if gpu.get(key))
        lines.append(f"{prefix}GPU {gpu.get('device')}: {gpu.get('name')}, {memory}" + (f", {facts}" if facts else ""))
    if env.get("gpu_settings"):
        lines.append(f"{prefix}GPU settings: {env['gpu_settings']}")
    if not env.get("gpus"):
        lines.append(f"{prefix}no GPU: {env.get('no_gpu_reason') or 'none found'}")
    lines.append(f"{prefix}software: Python {env.get('python')}, PyTorch {env.get('torch')}, "
                 f"{env.get('os')}, trainspeed {result.trainspeed_version}")
    return lines


def run_settings(result: RunResult) -> list[str]:
    """One run's settings, as bullets."""
    config, data = result.config, result.dataset
    lines = [f"models: {', '.join(config.get('models', []))}",
             f"epochs: {config.get('epochs')}, batch sizes: {', '.join(map(str, config.get('batch_sizes', [])))}, "
             f"precision: {', '.join(config.get('precisions') or [config.get('precision', 'fp32')])}, "
             f"seed: {config.get('seed')}",
             f"measured: {result.created}"]
    if config.get("prices"):
        lines.append(f"prices: {_prices(config)}")
    if config.get("cpu_watts"):
        lines.append(f"CPU power for an energy estimate: {config['cpu_watts']:g} W (--cpu-watts; used only where "
                     "RAPL could not be read)")
    if data:
        lines.insert(1, f"data: {data.name} ({data.train_images:,} training and {data.test_images:,} test images, "
                        f"from {data.source})")
    return lines


def _prices(config: dict) -> str:
    unit = f" {config['currency']}" if config.get("currency") else ""
    return ", ".join(f"{device} {price:g}{unit}/h" for device, price in (config.get("prices") or {}).items()) or "-"


def _joined(values) -> str:
    shown = [f"{v:,}" if isinstance(v, int) else str(v) for v in dict.fromkeys(values) if v not in (None, "")]
    return ", ".join(shown) or "-"


def _shape(shape) -> str:
    return "x".join(map(str, shape)) if shape else ""


def settings_of(result: RunResult) -> dict[str, str]:
    """A run's settings as a reader compares them; the cases say what was measured, the data set the rest."""
    cases, data, config = result.cases, result.dataset, result.config
    return {
        "data set": _joined([case.dataset for case in cases] or [data.name if data else None]),
        "training images": _joined(sorted({case.train_images for case in cases if case.train_images})
                                   or [data.train_images if data else None]),
        "test images": _joined(sorted({case.test_images for case in cases if case.test_images})
                               or [data.test_images if data else None]),
        "image shape": _joined([_shape(case.image_shape) for case in cases]
                               or [_shape(data.image_shape) if data else None]),
        "batch sizes": _joined(sorted({case.batch_size for case in cases})),
        "precisions": _joined(case.precision for case in cases),
        "epochs": _joined([config.get("epochs")]),
        "seed": _joined([config.get("seed")]),
        "trainspeed": result.trainspeed_version,
        "PyTorch": str(result.environment.get("torch") or "-"),
        "prices": _prices(config),
    }


def settings_table(comparison: Comparison) -> Table:
    """Each file's settings in a column; a row whose values differ is marked, and flagged in the page."""
    labels = [label or "this run" for label, _ in comparison.sources]
    settings = [settings_of(result) for _, result in comparison.sources]
    rows, flagged = [], set()
    for name in settings[0]:
        values = [each[name] for each in settings]
        differs = len(set(values)) > 1
        if differs:
            flagged |= {(len(rows), column) for column in range(1, len(values) + 1)}
        rows.append([name + (DIFFERS if differs else "")] + values)
    return Table(["setting"] + labels, rows, "the settings of each results file; (differs) marks what is not the same",
                 flagged, text_columns=len(labels) + 1)
