"""Predicting a person's own pictures: image files of any size and mode, in Python and on the command line."""

import json
import pickle
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

import trainspeed
from conftest import CIFAR_NAMES, SAMPLE_ARCHIVE
from test_cli import trainspeed as trainspeed_cli
from trainspeed.errors import ImageFileError
from trainspeed.image_files import read_picture
from trainspeed.models import create_model
from trainspeed.saved import save_model


def _cnn_file(folder):
    torch.manual_seed(0)
    spec = create_model("cnn", (3, 32, 32), 10)
    spec.class_names = tuple(CIFAR_NAMES)
    return save_model(spec, folder / "cnn.safetensors", {"dataset": "cifar10", "device": "cpu",
                                                         "test_accuracy": 0.5})


@pytest.fixture(scope="module")
def cnn_file(tmp_path_factory):
    return _cnn_file(tmp_path_factory.mktemp("model"))


def _photo(path, size=(640, 480), mode="RGB", **save):
    rng = np.random.default_rng(0)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(path, **save)
    return path


def test_a_32x32_rgb_png_reaches_the_model_unchanged(tmp_path, cnn_file):
    pixels = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    picture = read_picture(tmp_path / "a.png", (3, 32, 32))
    assert picture.changes == () and picture.original_size == (32, 32) and picture.original_mode == "RGB"
    np.testing.assert_array_equal(picture.pixels, pixels.transpose(2, 0, 1))
    from_file = trainspeed.predict(cnn_file, [tmp_path / "a.png"])
    from_array = trainspeed.predict(cnn_file, pixels[None])
    np.testing.assert_array_equal(from_file.probabilities, from_array.probabilities)
    assert from_file.probabilities.sum() == pytest.approx(1.0, abs=1e-5)


CONVERSIONS = {
    "photo-sized jpeg": (dict(size=(1024, 768)), ".jpg",
                         ["cropped to its central 768x768", "resized from 768x768 to 32x32"]),
    "rgba png": (dict(size=(48, 48), mode="RGBA"), ".png",
                 ["converted from RGBA to RGB (transparency over white)", "resized from 48x48 to 32x32"]),
    "greyscale png": (dict(size=(32, 32), mode="L"), ".png", ["converted from L to RGB"]),
    "tall greyscale": (dict(size=(20, 60), mode="L"), ".png",
                       ["converted from L to RGB", "cropped to its central 20x20", "resized from 20x20 to 32x32"]),
}


@pytest.mark.parametrize("case", CONVERSIONS)
def test_any_size_and_mode_is_converted_and_said_so(tmp_path, case):
    options, suffix, changes = CONVERSIONS[case]
    path = _photo(tmp_path / f"x{suffix}", **options)
    picture = read_picture(path, (3, 32, 32))
    assert picture.pixels.shape == (3, 32, 32) and picture.pixels.dtype == np.uint8
    assert [change for change in picture.changes] == changes
    assert picture.original_size == options["size"]


def test_palette_sixteen_bit_and_exif_rotated_pictures(tmp_path):
    Image.new("P", (10, 10), 3).save(tmp_path / "p.png")
    assert read_picture(tmp_path / "p.png", (3, 32, 32)).changes[0] == "converted from P to RGB"
    deep = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    picture = read_picture(tmp_path / "deep.png", (1, 28, 28))
    assert picture.changes[0].startswith("converted from I;16") and picture.pixels.shape == (1, 28, 28)
    assert picture.pixels.max() > 200  # scaled to 8 bits, not clipped to black
    exif = Image.Exif()
    exif[0x0112] = 6  # taken with the camera turned: the stored 40x20 is shown 20x40
    _photo(tmp_path / "turned.jpg", size=(40, 20), exif=exif)
    turned = read_picture(tmp_path / "turned.jpg", (3, 32, 32))
    assert turned.changes[0] == "turned upright as its EXIF orientation says"
    assert "cropped to its central 20x20" in turned.changes


def test_wide_greyscale_keeps_its_brightness_and_animations_say_which_frame(tmp_path):
    Image.fromarray(np.full((8, 8), 100, np.uint16)).save(tmp_path / "dark.png")  # 100 of 65535: near black
    Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(tmp_path / "grey.png")
    assert read_picture(tmp_path / "dark.png", (1, 8, 8)).pixels.max() == 0
    assert read_picture(tmp_path / "grey.png", (1, 8, 8)).pixels.min() == 128
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "green", "blue")]
    frames[0].save(tmp_path / "moving.gif", save_all=True, append_images=frames[1:])
    moving = read_picture(tmp_path / "moving.gif", (3, 32, 32))
    assert moving.changes[0] == "its first frame of 3" and moving.pixels[0].mean() > 200
    Image.new("LAB", (32, 32)).save(tmp_path / "lab.tif")
    assert read_picture(tmp_path / "lab.tif", (3, 32, 32)).changes == ("converted from LAB to RGB",)


def test_python_predict_takes_the_arrays_people_have_and_refuses_the_rest(cnn_file):
    pixels = np.random.default_rng(3).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    expected = trainspeed.predict(cnn_file, pixels).probabilities
    reversed_twice = pixels[..., ::-1][..., ::-1]  # negative strides, as OpenCV's BGR -> RGB leaves them
    for same in (pixels.astype(np.int64), pixels.tolist(), pixels.astype(np.float32) / 255, reversed_twice,
                 torch.from_numpy(pixels)):
        np.testing.assert_allclose(trainspeed.predict(cnn_file, same).probabilities, expected, atol=1e-6)
    refused = {"float pixels must be scaled to 0-1": pixels.astype(np.float32),
               "whole-number pixels must be from 0 to 255": pixels.astype(np.int64) - 1,
               "no images given": pixels[:0], "do not form one array": [pixels[0], pixels[0, :16]]}
    for message, images in refused.items():
        with pytest.raises(trainspeed.errors.ImageShapeError, match=message):
            trainspeed.predict(cnn_file, images)
    greyscale = create_model("mlp:1", (1, 28, 28), 10)
    batch = np.zeros((5, 28, 28), np.uint8)  # Keras's Fashion-MNIST arrays carry no channel axis
    assert len(trainspeed.predict(greyscale, batch).classes) == 5


BAD_PICTURES = {
    "not an image": (lambda path: path.write_text("hello"), "is not an image Pillow can read"),
    "truncated png": (lambda path: path.write_bytes(_png_bytes(path)[:200]), "is damaged or truncated"),
    "truncated jpeg": (lambda path: path.write_bytes(_jpeg_bytes(path)[:600]), "is damaged or truncated"),
    "missing": (lambda path: None, "no image file at"),
    "a folder": (lambda path: path.mkdir(), "is a folder"),
}


def _png_bytes(path):
    _photo(path.with_suffix(".full.png"), size=(64, 64))
    return path.with_suffix(".full.png").read_bytes()


def _jpeg_bytes(path):
    _photo(path.with_suffix(".full.jpg"), size=(64, 64))
    return path.with_suffix(".full.jpg").read_bytes()


@pytest.mark.parametrize("case", BAD_PICTURES)
def test_a_bad_picture_is_one_clear_error(tmp_path, case):
    make, message = BAD_PICTURES[case]
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(ImageFileError, match=message):
        read_picture(path, (3, 32, 32))


def test_predict_on_the_command_line_table_and_json(tmp_path, cnn_file):
    _photo(tmp_path / "photo.jpg", size=(1024, 768))
    _photo(tmp_path / "small.png", size=(32, 32))
    (tmp_path / "cnn.safetensors").write_bytes(cnn_file.read_bytes())
    done = trainspeed_cli("predict", "cnn.safetensors", "photo.jpg", "small.png", "--top", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "photo.jpg" in done.stdout and "resized from 768x768 to 32x32" in done.stdout
    assert "a cnn for 32x32x3 images" in done.stdout and "test accuracy 50.0%" in done.stdout
    assert "mean nothing" not in done.stdout
    torch.manual_seed(0)
    random_data = create_model("cnn", (3, 32, 32), 10)
    random_data.class_names = tuple(CIFAR_NAMES)
    save_model(random_data, tmp_path / "random.safetensors", {"dataset": "synthetic", "test_accuracy": 0.1})
    done = trainspeed_cli("predict", "random.safetensors", "small.png", cwd=tmp_path)
    assert done.returncode == 0 and "learned random images with random labels: its answers mean nothing" in (
        " ".join(done.stdout.split()))
    done = trainspeed_cli("predict", "cnn.safetensors", "photo.jpg", "small.png", "--json", cwd=tmp_path)
    answers = json.loads(done.stdout)
    assert answers["model"]["architecture"] == "cnn" and answers["model"]["classes"] == CIFAR_NAMES
    photo, small = answers["images"]
    assert photo["size"] == [1024, 768] and photo["changes"][0].startswith("cropped")
    assert small["changes"] == [] and len(small["top"]) == 3
    expected = trainspeed.predict(cnn_file, [tmp_path / "small.png"]).probabilities[0]
    assert [guess["class"] for guess in small["top"]] == [CIFAR_NAMES[i] for i in np.argsort(-expected)[:3]]
    assert small["top"][0]["probability"] == pytest.approx(float(expected.max()), abs=1e-6)


@pytest.mark.parametrize("case", ["not an image", "a model from elsewhere", "damaged model", "bad top"])
def test_predict_bad_input_gives_one_line_and_exit_2(tmp_path, cnn_file, case):
    _photo(tmp_path / "good.png", size=(32, 32))
    (tmp_path / "notes.txt").write_text("not a picture")
    (tmp_path / "other.safetensors").write_bytes(b"{}" * 10)
    damaged = bytearray(cnn_file.read_bytes())
    damaged[-5] ^= 0xFF
    (tmp_path / "damaged.safetensors").write_bytes(bytes(damaged))
    args, message = {
        "not an image": ([str(cnn_file), "good.png", "notes.txt"], "notes.txt is not an image"),
        "a model from elsewhere": (["other.safetensors", "good.png"], "is not a model file trainspeed can read"),
        "damaged model": (["damaged.safetensors", "good.png"], "is damaged"),
        "bad top": ([str(cnn_file), "good.png", "--top", "0"], "--top must be at least 1"),
    }[case]
    done = trainspeed_cli("predict", *args, cwd=tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stdout == ""
    assert len(lines) == 1 and lines[0].startswith("trainspeed: error: ") and message in lines[0], done.stderr


def _cifar_test_images(count):
    with tarfile.open(SAMPLE_ARCHIVE) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("test_batch"))
        batch = pickle.load(archive.extractfile(member), encoding="bytes")
    return batch[b"data"][:count].reshape(count, 3, 32, 32), batch[b"labels"][:count]


@pytest.mark.skipif(not SAMPLE_ARCHIVE.exists(), reason="the CIFAR-10 sample is not beside the repository")
def test_real_cifar_test_images_saved_as_png_predict_as_their_arrays(tmp_path, cnn_file):
    images, _ = _cifar_test_images(4)
    paths = []
    for index, image in enumerate(images):
        paths.append(tmp_path / f"test{index}.png")
        Image.fromarray(image.transpose(1, 2, 0)).save(paths[-1])
    from_files = trainspeed.predict(cnn_file, paths)
    np.testing.assert_array_equal(from_files.probabilities, trainspeed.predict(cnn_file, images).probabilities)


def test_a_named_pipe_or_an_oversized_file_is_refused_without_blocking(tmp_path):
    """Opening a FIFO blocks until a writer comes; `predict MODEL fifo.png` hung for good."""
    import os
    import threading

    from trainspeed import image_files

    os.mkfifo(tmp_path / "fifo.png")
    outcome = []

    def read():
        try:
            read_picture(tmp_path / "fifo.png", (3, 32, 32))
        except ImageFileError as error:
            outcome.append(str(error))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=30)
    assert outcome and "fifo.png is not a regular file (a pipe, a device or a socket)" in outcome[0]
    huge = tmp_path / "huge.png"
    with open(huge, "wb") as sparse:  # sparse: no disk taken
        sparse.truncate(image_files.MAX_PICTURE_BYTES + 1)
    with pytest.raises(ImageFileError, match="huge.png is 256 MB, more than any picture trainspeed reads"):
        read_picture(huge, (3, 32, 32))
