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
