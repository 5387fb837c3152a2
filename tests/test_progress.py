"""Live progress: a compact bar in a terminal of 80 columns, one plain line per epoch in a pipe or a log."""

import io

from rich.console import Console

from trainspeed.progress import EpochProgress, batch_of


def _drive(progress: EpochProgress) -> None:
    with progress:
        progress.message("note: synthetic random data")
        for epoch in (1, 2):
            progress.start_epoch(f"cnn on cpu, keras-tensorflow, batch 32: epoch {epoch}/2", 1563)
            for step in (400, 800, 1563):
                progress.update(step, 1563, 2.3041, 0.109, elapsed_s=step * 0.02)


def test_off_a_terminal_each_epoch_is_one_plain_line():
    out = io.StringIO()
    _drive(EpochProgress(Console(file=out, force_terminal=False, width=80)))
    lines = out.getvalue().splitlines()
    assert lines[0] == "note: synthetic random data"
    epochs = lines[1:]
    assert len(epochs) == 2 and all("━" not in line and "\x1b" not in line for line in lines)
    assert epochs[0].startswith("cnn on cpu, keras-tensorflow, batch 32: epoch 1/2: 1563/1563 - ")
    # The time the training process read: 1563 steps of 20 ms, 32 images each.
    assert epochs[0].endswith(": 1563/1563 - 31.3s - 20 ms/step, 1,600 img/s - loss 2.3041 - accuracy 0.1090")


def test_in_a_terminal_the_bar_fits_80_columns():
    out = io.StringIO()
    _drive(EpochProgress(Console(file=out, force_terminal=True, width=80, color_system=None), min_interval_s=0))
    text = out.getvalue()
    assert "ms/step" in text and "loss 2.3041 acc 0.109" in text and "epoch 2/2" in text
    visible = [line for chunk in text.split("\r") for line in chunk.split("\n")]
    assert max(len(line.replace("\x1b[2K", "").replace("\x1b[1A", "").replace("\x1b[?25l", "")
                   .replace("\x1b[?25h", "")) for line in visible) <= 80


def test_the_batch_is_read_from_the_label():
    assert batch_of("cnn on cpu, batch 32: epoch 1/3") == 32
    assert batch_of("cnn on cpu, batch 256, bf16, repeat 2/3: epoch 1/3") == 256
    assert batch_of("cnn on cpu: epoch 1/3") is None


def _key(model: str, device: str, batch: int = 32):
    from trainspeed.cases import CaseKey, Workload

    return CaseKey(Workload(model, "cifar10", (3, 32, 32), 50_000, 10_000, batch, "fp32"), device)


def test_the_run_eta_prices_each_case_to_come_by_the_finished_case_most_like_it():
    from trainspeed.eta import case_estimate, duration_phrase, time_left

    cnn_cpu, cnn_gpu, ann_cpu = _key("cnn", "cpu"), _key("cnn", "cuda:0"), _key("ann", "cpu")
    finished = {cnn_cpu: 300.0, cnn_gpu: 30.0}
    assert case_estimate(_key("cnn", "cpu", batch=256), finished) == 300.0  # same model and device
    assert case_estimate(ann_cpu, finished) == 300.0  # the same device before the same model
    assert case_estimate(_key("ann", "mps"), finished) == 165.0  # nothing alike: the mean
    # The current case has run 100 s of its 300: 200 s left, plus an ann on the CPU priced at 300 s.
    assert time_left([_key("cnn", "cpu", 256), ann_cpu], finished, current_elapsed_s=100.0) == 500.0
    assert time_left([ann_cpu], {}) is None  # nothing finished yet: no figure rather than a guess
    assert [duration_phrase(s) for s in (0.2, 42, 125, 7500)] == [
        "about 1 s", "about 42 s", "about 2 min", "about 2 h 05 min"]


def test_a_finished_epoch_stays_under_its_own_case_in_a_terminal():
    out = io.StringIO()
    progress = EpochProgress(Console(file=out, force_terminal=True, width=80, color_system=None), min_interval_s=0)
    with progress:
        for case in ("ann on cpu", "cnn on cpu"):
            progress.message(f"case: {case}")
            progress.start_epoch(f"{case}, batch 32: epoch 1/1", 100)
            for step in (50, 100):
                progress.update(step, 100, 2.3, 0.1, elapsed_s=step * 0.01)
    text = out.getvalue()
    finished = [text.index(f"{case}, batch 32") for case in ("ann on cpu", "cnn on cpu")]
    ann_epoch = text.index("epoch 1/1 100/100 - 1.0s - 10 ms/step - loss 2.3000 acc 0.100")
    assert finished[0] < ann_epoch < text.index("case: cnn on cpu") < finished[1]
    assert text.count("epoch 1/1 100/100 - 1.0s") == 2  # each epoch's line printed once, the bars gone


def test_an_epochs_line_counts_the_images_it_trained_on_not_steps_times_batch():
    """--limit 2100 --batch-size 2048: two steps of 2048 and 52 images; 4,096 would double the rate."""
    out = io.StringIO()
    with EpochProgress(Console(file=out, force_terminal=False, width=120)) as progress:
        progress.start_epoch("mlp:1 on cpu, batch 2048: epoch 1/1", 2, 2100)
        progress.update(2, 2, 2.3, 0.1, elapsed_s=1.0)
    assert out.getvalue().strip().endswith("2/2 - 1.0s - 500 ms/step, 2,100 img/s - loss 2.3000 - accuracy 0.1000")


def test_a_childs_epoch_event_carries_its_image_count():
    import json

    from trainspeed.isolation import EventProgress, handle_event

    sent = io.StringIO()
    EventProgress(sent).start_epoch("mlp:1 on cpu, batch 2048: epoch 1/1", 2, 2100)
    seen = []

    class Recorder:
        def start_epoch(self, label, steps, images=None):
            seen.append((label, steps, images))

    handle_event(sent.getvalue(), Recorder())
    assert json.loads(sent.getvalue())["images"] == 2100 and seen == [("mlp:1 on cpu, batch 2048: epoch 1/1", 2, 2100)]
