"""Quantize -> dequantize arithmetic and the reconstruction metrics (pure torch, no model)."""

import math

import pytest
import torch

from pack.errors import ManifestError
from pack.experiments.ecmoe.quantize import ReconStats, check_bits, check_method, quant_dequant

pytestmark = pytest.mark.ecmoe


@pytest.mark.parametrize("bad", [3, 16, 0, True, "8", 8.0, None])
def test_bits_outside_2_4_8_is_one_sentence(bad):
    with pytest.raises(ManifestError, match=r"params.bits = .* one of 2, 4, 8"):
        check_bits(bad)


def test_method_typo_suggests_the_close_name():
    with pytest.raises(ManifestError, match="did you mean 'absmax'"):
        check_method("absmx")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("method", ["absmax", "zeropoint"])
def test_shape_dtype_and_device_are_the_inputs(dtype, method):
    x = torch.randn(2, 5, 16).to(dtype)
    y = quant_dequant(x, method, 4)
    assert y.shape == x.shape and y.dtype == dtype and y.device == x.device


def test_absmax_int8_error_is_at_most_half_a_step():
    x = torch.randn(64, 32) * torch.linspace(0.1, 10, 32)
    y = quant_dequant(x, "absmax", 8)
    step = x.abs().amax(dim=-1, keepdim=True) / 127
    assert torch.all((x - y).abs() <= step / 2 + 1e-6)
    assert torch.equal(quant_dequant(y, "absmax", 8), y)  # a reconstruction is a fixed point


def test_absmax_int2_has_three_levels_per_token():
    x = torch.randn(8, 64)
    y = quant_dequant(x, "absmax", 2)
    for row, out in zip(x, y, strict=True):
        s = row.abs().max()
        assert set(torch.unique(out / s).round().tolist()) <= {-1.0, 0.0, 1.0}


def test_zeropoint_uses_the_whole_range_of_a_shifted_row():
    x = torch.randn(16, 40) + 3.0  # all positive: absmax would waste half its levels
    y = quant_dequant(x, "zeropoint", 4)
    step = (x.amax(-1, keepdim=True) - x.amin(-1, keepdim=True)) / 15
    assert torch.all(
        (x - y).abs() <= step + 1e-6
    )  # rounding, plus at most one level lost to the rounded zero point
    assert (x - y).pow(2).mean() < 0.5 * (x - quant_dequant(x, "absmax", 4)).pow(2).mean()


def test_stats_match_a_hand_computation():
    x = torch.tensor([[1.0, 2.0, 2.0], [3.0, 0.0, 4.0]])
    y = torch.tensor([[1.0, 2.0, 1.0], [3.0, 1.0, 4.0]])
    s = ReconStats()
    s.add(0, x, y)
    s.add(1, x, x)  # a lossless block: infinite SNR
    out = s.summary()
    mse0 = 2 / 6
    cos0 = (7 / (3 * math.sqrt(6)) + 25 / (5 * math.sqrt(26))) / 2
    assert out["mse"] == pytest.approx(mse0 / 2)
    assert out["cosine"] == pytest.approx((cos0 + 1) / 2)
    assert math.isinf(out["snr_db"])
    only = ReconStats()
    only.add(0, x, y)
    assert only.summary()["snr_db"] == pytest.approx(10 * math.log10(34 / 2))
