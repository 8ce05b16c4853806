"""Causal language models (task causal_lm): the embedded quickstart's tiny LLaMA, trained from scratch as the
protocol's dense base model, and any Hugging Face causal LM saved in a local directory, the dense model one-shot
pruning prunes (base.epochs: 0). Both give their logits as `.logits` (prunebench.tasks.causal_lm reads them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from prunebench.errors import FieldError
from prunebench.language import check_seqlen, load_causal_lm, tiny_llama_config
from prunebench.models.probe import InputShape
from prunebench.models.registry import register_model
from prunebench.protocol.sections import expand_path


@register_model(
    "tiny_llama",
    "a LLaMA-architecture causal LM (Touvron et al. 2023) with grouped-query attention, 4 layers of width 128 by "
    "default (1.0 M parameters at 1,024 tokens): the language-model quickstart's",
    text=True,
)
def tiny_llama(
    num_classes: int,
    input_shape: InputShape,
    layers: int = 4,
    hidden: int = 128,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 352,
    positions: int = 256,
) -> nn.Module:
    from transformers import LlamaForCausalLM

    config = tiny_llama_config(
        num_classes,
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads,
        intermediate=intermediate,
        positions=positions,
    )
    check_seqlen(config, input_shape[0])
    return LlamaForCausalLM(config)


def _directory(args: dict[str, Any]) -> tuple[Path, ...]:
    path = args.get("path")
    return (expand_path(path, ("model", "args", "path"), "the model directory"),) if isinstance(path, str) else ()


@register_model(
    "hf_causal_lm",
    "a Hugging Face causal LM from a local directory (args: path; LLaMA, Mistral, Qwen2/3, OPT, ...), its weights "
    "the dense model to prune (base.epochs: 0); never downloaded",
    text=True,
    files=_directory,
)
def hf_causal_lm(num_classes: int, input_shape: InputShape, path: str, dtype: str = "float32") -> nn.Module:
    directory = expand_path(path, ("model", "args", "path"), "the model directory")
    try:
        model, _tokenizer = load_causal_lm(directory, dtype=dtype)
        check_seqlen(model.config, input_shape[0])
    except ValueError as exc:
        raise FieldError(("model", "args", "path"), str(exc)) from None
    # Training mode, as every built model starts; the engine switches modes where it evaluates.
    result: Any = model.train()
    return result
