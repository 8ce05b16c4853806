"""prunebench.language.layerwise's options and its memory: eager attention (not sdpa) and float64
activations give prune_wanda's masks still; a name filter prunes only what it names; the tensors it makes at
once are the two activation buffers, the masks and one layer's work on one window."""

from __future__ import annotations

import copy
import weakref

import pytest
import torch
from test_lm_layerwise import reference_prune_wanda, wanda
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from prunebench.language import Statistic, layerwise, wikitext2_calibration


@pytest.fixture(scope="module")
def windows(encode, lines) -> Tensor:
    return wikitext2_calibration(lines, encode, nsamples=64, seqlen=64, seed=0).inputs


def test_eager_attention_and_float64_activations(tiny_llama, windows) -> None:
    ours, theirs = copy.deepcopy(tiny_llama), copy.deepcopy(tiny_llama)
    for model in (ours, theirs):
        model.set_attn_implementation("eager")
    result = layerwise(ours, windows[:8], wanda(0.5), Statistic.INPUT_STATS, dtype=torch.float64)
    expected = reference_prune_wanda(theirs, windows[:8], 0.5)
    assert all(torch.equal(result.masks[name], ~pruned) for name, pruned in expected.items())


def test_only_what_the_filter_names_is_pruned(tiny_llama, windows) -> None:
    model = copy.deepcopy(tiny_llama)
    result = layerwise(model, windows[:4], wanda(0.5), Statistic.INPUT_STATS, prunable=lambda name: "mlp" in name)
    assert len(result.masks) == 6 and all(".mlp." in name for name in result.masks)
    for name, weight in tiny_llama.named_parameters():
        assert torch.equal(model.get_parameter(name), weight) == (name not in result.masks), name
    assert result.layers[0].groups == [list(result.masks)[:3]]


def test_bad_windows_are_one_sentence(tiny_llama) -> None:
    with pytest.raises(ValueError, match=r"must be \(nsamples, seqlen\) token ids, got \(64,\)"):
        layerwise(copy.deepcopy(tiny_llama), torch.zeros(64, dtype=torch.long), wanda(0.5), Statistic.INPUT_STATS)


class LiveBytes(TorchDispatchMode):
    """The bytes held by the storages of tensors that torch operations make while it is on (the storages given to
    `ignore`, the model's, left out), as they are made and freed (a storage is freed when the last tensor seen on
    it is), and their peak. CPU tensors have no allocator statistics (`torch.cuda.max_memory_allocated`)."""

    def __init__(self, ignore: list[Tensor]) -> None:
        super().__init__()
        self.ignore = {t.untyped_storage().data_ptr() for t in ignore}
        self.live: dict[int, list[int]] = {}
        self.now = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            key = t.untyped_storage().data_ptr() if isinstance(t, Tensor) else 0
            if key and key not in self.ignore:
                entry = self.live.setdefault(key, [t.untyped_storage().nbytes(), 0])
                self.now += entry[0] if entry[1] == 0 else 0
                self.peak, entry[1] = max(self.peak, self.now), entry[1] + 1
                weakref.finalize(t, self.release, key)
        return out

    def release(self, key: int) -> None:
        entry = self.live[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.now -= self.live.pop(key)[0]


def peak_bytes(model: torch.nn.Module, windows: Tensor) -> tuple[int, int]:
    """The peak bytes of Wanda through layerwise on a copy of the model, and the bytes still held (the masks)."""
    model = copy.deepcopy(model)
    with LiveBytes([*model.parameters(), *model.buffers(), windows]) as live:
        result = layerwise(model, windows, wanda(0.5), Statistic.INPUT_STATS)
    assert live.now == sum(mask.numel() for mask in result.masks.values())  # bool masks: all the rest was freed
    return live.peak, live.now


@torch.no_grad()
def test_memory_is_two_buffers_and_one_layer_on_one_window(tiny_llama, windows) -> None:
    """Growing the calibration set from 4 to 64 windows adds exactly the two activation buffers' 60 windows (not a
    layer's outputs per layer, nor the layer's work on all windows at once), and the rest is the masks and less than
    twice what one decoder layer makes on one window."""
    window = 64 * tiny_llama.config.hidden_size * 4  # one window's hidden states, float32
    (few, masks), (many, _) = peak_bytes(tiny_llama, windows[:4]), peak_bytes(tiny_llama, windows)
    assert many >= 2 * 64 * window and many - few <= 2 * 60 * window
    x = torch.randn(1, 64, tiny_llama.config.hidden_size)
    layer = tiny_llama.model.layers[0]
    with LiveBytes([*tiny_llama.parameters(), *tiny_llama.buffers(), x]) as one:
        layer(x, position_embeddings=tiny_llama.model.rotary_emb(x, torch.arange(64)[None]), attention_mask=None)
    assert few - 2 * 4 * window - masks <= 2 * one.peak
