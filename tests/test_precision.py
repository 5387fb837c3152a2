"""Precision as an axis: names, where each runs, the flags it sets, and a run across precisions."""

import warnings

import pytest
import torch

import trainspeed
from trainspeed.config import RunConfig
from trainspeed.engine.step import forward
from trainspeed.errors import ConfigError
from trainspeed.machine import precision
from trainspeed.models import create_model

CPU = torch.device("cpu")


def test_unknown_precision_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="unknown precision 'fp16'; choose from: fp32, tf32, bf16"):
        RunConfig(precisions=["fp32", "fp16"]).validate()
    # Named twice, the same case would be planned twice and the second reported "already measured".
    with pytest.raises(ConfigError, match="a precision is named twice in fp32,fp32: name each once"):
        RunConfig(precisions=["fp32", "fp32"]).validate()
    with pytest.raises(ConfigError, match="--dist-timeout must be a number of seconds, got nan"):
        RunConfig(dist_timeout_s=float("nan")).validate()
    with pytest.raises(ConfigError, match="no precision given"):
        RunConfig(precisions=[]).validate()


def test_results_written_before_precision_was_an_axis_still_resume():
    assert RunConfig.from_dict({"precision": "fp32", "epochs": 2}).precisions == ["fp32"]


def test_where_each_precision_runs(monkeypatch):
    assert precision.unsupported_reason("fp32", CPU) is None
    assert "GPU tensor-core format" in precision.unsupported_reason("tf32", CPU)
    monkeypatch.setattr(precision, "_cpu_has_bf16", lambda: False)
    assert "neither AVX512-BF16 nor AMX" in precision.unsupported_reason("bf16", CPU)
    monkeypatch.setattr(precision, "_cpu_has_bf16", lambda: True)
    assert precision.unsupported_reason("bf16", CPU) is None
    assert "not measured on mps" in precision.unsupported_reason("bf16", torch.device("mps"))


def test_tf32_flags_are_on_only_for_tf32_and_set_without_warnings():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the legacy allow_tf32 flags may warn on new PyTorch
            precision.apply("tf32")
            assert precision.tf32_enabled()
            assert torch.backends.cuda.matmul.fp32_precision == "tf32"
            precision.apply("bf16")
            assert not precision.tf32_enabled()
            # cuDNN's convolutions default to TF32: fp32 must say ieee for them too.
            assert torch.backends.cudnn.conv.fp32_precision == "ieee"
            assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    finally:
        precision.apply("fp32")


def test_bf16_runs_matmuls_in_bf16_and_keeps_weights_and_loss_in_fp32():
    torch.manual_seed(0)
    spec = create_model("cnn", (3, 32, 32), 10)
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 3])
    spec.network.eval()  # no dropout: the two passes must see the same function
    with precision.autocast("bf16", CPU):
        assert spec.network[0](torch.rand(1, 3, 32, 32)).dtype == torch.bfloat16
    logits, loss = forward(spec, images, labels, "bf16")
    assert logits.dtype == torch.float32 and loss.dtype == torch.float32
    reference, _ = forward(spec, images, labels, "fp32")
    difference = (logits - reference).abs().max().item()
    assert 0 < difference < 0.05  # bf16 rounds (8 mantissa bits) but computes the same function
    assert all(p.dtype == torch.float32 for p in spec.network.parameters())


@pytest.mark.skipif(precision.unsupported_reason("bf16", CPU) is not None, reason="this CPU has no bf16 units")
def test_a_run_across_precisions_measures_each_against_its_own_peak(monkeypatch):
    from trainspeed.machine import validity

    # On a machine other programs load, peaks are flagged and no MFU shown (tested on its own): not this test.
    monkeypatch.setattr(validity, "under_load", lambda *args: False)
    result = trainspeed.run(models=["mlp:1"], devices=["cpu"], dataset="synthetic", limit=64, epochs=2,
                            batch_sizes=[32], precisions=["fp32", "bf16", "tf32"], synthetic_shape=(8, 8, 1),
                            out=None, isolate=False)
    fp32, bf16, tf32 = result.cases
    assert (fp32.precision, bf16.precision, tf32.precision) == ("fp32", "bf16", "tf32")
    assert fp32.ok and bf16.ok and fp32.mfu and bf16.mfu
    assert tf32.status == "failed" and "GPU tensor-core format" in tf32.error
    peaks = result.environment["peaks"]
    assert set(peaks) == {"cpu", "cpu bf16"} and peaks["cpu bf16"]["precision"] == "bf16"
    # MFU is judged against the peak of the precision the case ran in.
    assert bf16.mfu == pytest.approx(bf16.achieved_flops_per_s / peaks["cpu bf16"]["matmul_flops_per_s"])
