"""One repeat of a case trained by the seeds' Keras code, in its own process, timed by trainspeed's rules.

The same rules as trainspeed's engine: the same arrays (the data set's images, scaled as the
seeds scale them), a fresh model from the seed, every epoch timed by the one Timer with the
backend's own wait at both ends, the first step apart, then `evaluate` and `predict` on the
test set. What differs, and is said in the results: the order of the images within an epoch is
Keras's own (`fit(shuffle=True)` draws it from Keras's seeded generator), and so are the initial
weights (Keras's glorot-uniform from the same seed number, not trainspeed's generator).
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from dataclasses import replace

import numpy as np

from .. import inference
from ..cases import CaseKey, repeat_label
from ..config import RunConfig
from ..machine import validity
from ..machine.power import PowerLog, meter_for
from ..progress import REPORT_SECONDS
from ..results import SAMPLE_IMAGES, EpochRecord, Failure, Measurement, StartupCost
from ..stats import first_and_steady, steps_per_epoch
from ..timing import Timer
from .backends import Backend, import_backend
from .seeds import build_seed, seed_arrays


class _Device:
    """What the validity checks read of a device: its type."""

    def __init__(self, name: str) -> None:
        self.type = name.partition(":")[0]


def epoch_clock(keras, timer: Timer, progress, label: str, epochs: int, steps: int, meter: PowerLog,
                images: int | None = None):
    """A Keras callback that times each epoch and the first step through `timer`, reads `meter` around
    each epoch (outside the timer's synchronizations), and reports progress.

    Its per-batch hook only reports, so it is safe to run off the training thread: Keras then keeps
    dispatching steps asynchronously (JAX) as it would with no callback of ours.
    """

    class EpochClock(keras.callbacks.Callback):
        async_safe = True

        def __init__(self) -> None:
            super().__init__()
            self.history: list[EpochRecord] = []
            self._epoch: AbstractContextManager | None = None
            self._first: AbstractContextManager | None = None
            self._next_report = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            progress.start_epoch(f"{label}: epoch {epoch + 1}/{epochs}", steps, images)
            meter.epoch_started()
            self._epoch = timer.measure("epoch")
            self._epoch.__enter__()

        def on_train_batch_begin(self, batch, logs=None):
            # The first step ends when the second begins: both hooks run on the training thread.
            if not timer.records["first step"] and self._first is None:
                self._first = timer.measure("first step")
                self._first.__enter__()
            elif self._first is not None:
                self._end_first_step()

        def _end_first_step(self) -> None:
            self._first.__exit__(None, None, None)
            self._first = None

        def on_train_batch_end(self, batch, logs=None):
            done = batch + 1
            now = time.perf_counter()
            if done == steps or now >= self._next_report:
                self._next_report = now + REPORT_SECONDS
                progress.update(done, steps, float(logs.get("loss", np.nan)), float(logs.get("accuracy", np.nan)))

        def on_epoch_end(self, epoch, logs=None):
            if self._first is not None:
                self._end_first_step()
            self._epoch.__exit__(None, None, None)
            meter.epoch_ended()
            logs = logs or {}
            self.history.append(EpochRecord(epoch + 1, timer.records["epoch"][-1], float(logs.get("loss", np.nan)),
                                            float(logs.get("accuracy", np.nan))))

    return EpochClock()


def measure_keras_repeat(config: RunConfig, key: CaseKey, repeat: int, device: str, progress, *, watch,
                         startup: StartupCost, counts: dict, load_data) -> Measurement | Failure:
    """Import Keras on the case's backend, train the seed's model and evaluate it; an out-of-memory
    error becomes a Failure. `counts` holds what the parent counted on trainspeed's own model
    (params, FLOPs and bytes per step) and the device's name; `load_data(config)` gives the data set
    and the seconds reading it took (after Keras's import, which is timed on its own)."""
    engine, work = key.workload.engine, key.workload
    with Timer().measure("import") as imported:
        backend = import_backend(engine)
    backend.require_device(device)
    backend.set_threads(config.cpu_threads)
    backend.set_precision(work.precision)
    keras = backend.keras
    keras.utils.set_random_seed(config.seed)
    data, load_s = load_data(config)
    with Timer().measure("arrays") as converted:
        x_train, y_train = seed_arrays(data.train_images, data.train_labels, data.num_classes, work.model)
        x_test, y_test = seed_arrays(data.test_images, data.test_labels, data.num_classes, work.model)
    startup = replace(startup, import_s=imported.seconds, data_s=load_s + converted.seconds)
    label = repeat_label(key, repeat, config.repeats)
    timer = Timer(synchronize=lambda: backend.synchronize(device))
    try:
        with backend.scope(device):
            return _train(config, key, repeat, backend, device, timer, progress, label, watch, startup, counts,
                          (x_train, y_train, x_test, y_test), data)
    except Exception as error:
        if not backend.out_of_memory(error):
            raise
        return Failure(f"out of memory on {key.device} at batch size {work.batch_size} with {engine} "
                       f"({str(error).splitlines()[0][:160]}); try a smaller --batch-size",
                       peak_memory_bytes=backend.peak_memory_bytes(device))


def _train(config: RunConfig, key: CaseKey, repeat: int, backend: Backend, device: str, timer: Timer, progress,
           label: str, watch, startup: StartupCost, counts: dict, arrays: tuple, data) -> Measurement:
    keras, work = backend.keras, key.workload
    x_train, y_train, x_test, y_test = arrays
    channels, height, width = data.image_shape
    steps = steps_per_epoch(len(x_train), work.batch_size)
    backend.reset_peak_memory(device)
    before = validity.Snapshot.take()
    with timer.measure("build") as built:
        model = build_seed(keras, work.model, (height, width, channels), data.num_classes)
    if model.count_params() != counts["params"]:
        raise AssertionError(f"the Keras {work.model} has {model.count_params():,} parameters, trainspeed's "
                             f"{counts['params']:,}: the two would not train the same model")
    warmup_steps = 0
    if config.epochs == 1 and config.warmup_steps > 0:
        # A lone epoch would otherwise carry the tracing and compiling of Keras's step: the same
        # untimed warm-up steps as trainspeed's engine takes before its one epoch.
        warmup_steps = warm_up(keras, model, x_train, y_train, work.batch_size, config.warmup_steps, timer)
        progress.message(f"{label}: {warmup_steps} untimed warm-up steps done, timing one epoch")
    gpu = tuple(counts["gpu"]) if counts.get("gpu") else None
    with PowerLog(meter_for(device, config.cpu_watts, gpu)) as meter:
        clock = epoch_clock(keras, timer, progress, label, config.epochs, steps, meter, len(x_train))
        model.fit(x_train, y_train, batch_size=work.batch_size, epochs=config.epochs, shuffle=True, verbose=0,
                  callbacks=[clock])
    with timer.measure("eval") as evaluated:
        scores = model.evaluate(x_test, y_test, batch_size=work.batch_size, verbose=0, return_dict=True)
    probabilities = np.asarray(model.predict(x_test, batch_size=work.batch_size, verbose=0))
    after = validity.Snapshot.take()
    # Read before the network answers: its large batches must not count in training's memory peak.
    peak_memory_bytes = backend.peak_memory_bytes(device)
    answering = _inference(model, x_test, timer, backend) if config.inference and len(x_test) else None
    if answering is not None:
        progress.message(f"{key.label()}: {inference.describe(answering)}")
    predicted = probabilities.argmax(-1)
    classes = data.num_classes
    confusion = np.bincount(data.test_labels.astype(np.int64) * classes + predicted, minlength=classes * classes)
    epoch_s = tuple(timer.records["epoch"])
    first_epoch_s, steady_epoch_s = first_and_steady(epoch_s)
    warnings = validity.warnings_for(_Device(device), _Device(device), before, after,
                                     threads=config.cpu_threads or validity.usable_cores())
    if config.epochs == 1 and not warmup_steps:
        warnings.append(f"a single {work.engine} epoch includes tracing and compiling its step "
                        f"({timer.records['first step'][0]:.2f} s for the first step): use --epochs 2 or more "
                        "for a steady figure")
    last = clock.history[-1]
    convolutional = work.model == "cnn"
    return Measurement(
        repeat=repeat, steady_epoch_s=steady_epoch_s, epoch_s=epoch_s, first_epoch_s=first_epoch_s,
        history=tuple(clock.history), train_loss=last.train_loss, train_accuracy=last.train_accuracy,
        test_loss=float(scores["loss"]), test_accuracy=float(scores["accuracy"]), eval_s=evaluated.seconds,
        confusion_matrix=confusion.reshape(classes, classes).tolist(),
        sample_predictions=predicted[:SAMPLE_IMAGES].tolist(), steps_per_epoch=steps, params=model.count_params(),
        flops_per_step=counts.get("flops_per_step"), bytes_per_step=counts.get("bytes_per_step"),
        peak_memory_bytes=peak_memory_bytes, peak_host_memory_bytes=validity.peak_host_memory_bytes(),
        inference=answering, energy=meter.figures(list(epoch_s), len(x_train)), warmup_steps=warmup_steps,
        other_cpu_load=validity.other_cpu_load(before, after),
        under_load=validity.under_load(_Device(device), before, after), warnings=tuple(warnings),
        startup=replace(startup, build_s=built.seconds, first_step_s=timer.records["first step"][0],
                        steady_step_s=steady_epoch_s / steps),
        memory_format="channels_last" if convolutional else None,
        layout_choice="channels_last: Keras's data_format" if convolutional else None,
        device_name=counts.get("device_name", ""), cpu_threads=config.cpu_threads or validity.usable_cores(),
        stalled_s=round(watch.stalled_s, 3) if watch is not None else None,
        engine_versions=backend.versions(), engine_devices=tuple(backend.devices()))


def warm_up(keras, model, x_train: np.ndarray, y_train: np.ndarray, batch_size: int, steps: int,
            timer: Timer) -> int:
    """Train `steps` batches (and a last partial one where the epoch ends in one: a new shape to
    trace), the first step timed as in a timed epoch, then put back the weights and the optimizer's
    state as they were: the timed epoch starts from the seed's model with its step compiled.
    Returns the steps trained."""
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    weights = model.get_weights()
    state = [np.array(variable) for variable in optimizer.variables]
    count = min(steps, len(x_train) // batch_size) * batch_size + len(x_train) % batch_size

    class FirstStep(keras.callbacks.Callback):
        # As EpochClock: the first step ends when the second begins, or when training ends.
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                self.clock = timer.measure("first step")
                self.clock.__enter__()
            elif batch == 1:
                self.on_train_end()

        def on_train_end(self, logs=None):
            if getattr(self, "clock", None) is not None:
                self.clock.__exit__(None, None, None)
                self.clock = None

    model.fit(x_train[:count], y_train[:count], batch_size=batch_size, epochs=1, shuffle=False, verbose=0,
              callbacks=[FirstStep()])
    model.set_weights(weights)
    for variable, value in zip(optimizer.variables, state, strict=True):
        variable.assign(value)
    return -(-count // batch_size)


def _inference(model, x_test: np.ndarray, timer: Timer, backend: Backend):
    """The trained Keras model answering, by inference.py's rules: `predict_on_batch`, the call a Keras
    user makes for a few images, from the seeds' scaled float arrays."""
    count = min(len(x_test), inference.LATENCY_CALLS + 1)

    def batch_answerer(size: int):
        stacked = x_test[np.arange(size) % len(x_test)]
        return lambda: model.predict_on_batch(stacked)

    return inference.measure(timer, lambda n: model.predict_on_batch(x_test[n % count:n % count + 1]),
                             batch_answerer, backend.out_of_memory)
