"""Kernels and timing: 2:4 detection, the honest "no sparse kernel" everywhere it is so, and the timers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunebench.efficiency import is_two_four, peak_memory, semi_structured, time_forward, weight_bytes


def test_two_four_is_at_least_two_zeros_in_every_group_of_four() -> None:
    w = torch.tensor([[1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 3.0, 4.0]])
    assert is_two_four(w)
    w[0, 1] = 5.0  # the first group now has one zero
    assert not is_two_four(w)
    assert not is_two_four(torch.zeros(2, 6))  # rows that are no whole groups of four
    assert not is_two_four(torch.zeros(2, 4, 3, 3))  # a convolution's weight


def test_no_sparse_kernel_on_the_cpu_says_why() -> None:
    model, why = semi_structured(nn.Sequential(nn.Linear(64, 32)), torch.device("cpu"))
    assert model is None and why == "no sparse kernel on cpu: semi-structured 2:4 kernels need a CUDA device"


def test_timing_and_memory_on_the_cpu() -> None:
    model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 10)).eval()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seconds = time_forward(model, torch.randn(8, 256), min_run_time=0.02, threads=1)
        assert torch.get_num_threads() == 2  # the timer times at its threads, and leaves torch's as they were
    finally:
        torch.set_num_threads(before)
    assert seconds and all(s > 0 for s in seconds)
    # The hidden layer's output for 256 examples alone is 256 x 512 floats.
    assert peak_memory(model, torch.randn(256, 256)) >= 256 * 512 * 4
    assert weight_bytes(model) == 4 * (256 * 512 + 512 + 512 * 10 + 10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_semi_structured_kernels_on_a_gpu_that_has_them() -> None:
    device = torch.device("cuda")
    layer = nn.Linear(128, 64).to(device)
    with torch.no_grad():
        layer.weight.view(64, -1, 4)[..., :2] = 0  # 2:4
    model, why = semi_structured(nn.Sequential(layer), device)
    if torch.cuda.get_device_capability(device) < (8, 0):
        assert model is None and "compute capability" in why
        return
    assert model is not None and why.startswith("semi-structured 2:4 in 1 linear layer(s)")
    x = torch.randn(64, 128, device=device)
    with torch.inference_mode():
        expected = nn.Sequential(layer).half()(x.half())
        assert torch.allclose(model(x.half()), expected, atol=1e-2)
    assert time_forward(model, x.half(), min_run_time=0.02, threads=1)
