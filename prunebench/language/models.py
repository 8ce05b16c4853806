"""Hugging Face causal language models from a local directory, never the hub, and the layers one-shot pruning
prunes in them.

`load_causal_lm` reads a directory as `save_pretrained` writes it (config.json; weights as model.safetensors, the
sharded model.safetensors.index.json, or pytorch_model.bin[.index.json]) with transformers' AutoModelForCausalLM
and AutoTokenizer, `local_files_only=True` everywhere and no remote code: LLaMA, Mistral, Qwen2/3, OPT and any
other causal-LM architecture transformers knows, grouped-query attention included. One sentence each: a directory
that does not exist; one without config.json, weights or tokenizer files; a config transformers does not know, or
not of a causal LM (a base model saved without its head); weights that lack a tensor of the model; a tokenizer with
more tokens than the model's vocabulary (`config.vocab_size`, the embedding's rows).

`prunable_linears`: the references' prunable set (SparseGPT, Frantar & Alistarh 2023; Wanda, Sun et al. 2024:
`find_layers` on each of `model.model.layers` / `model.model.decoder.layers`): every nn.Linear inside the decoder
blocks, embeddings and `lm_head` left dense. The blocks are found without naming the architecture
(`decoder_blocks`): the first nn.ModuleList, in `named_modules` order, of `config.num_hidden_layers` modules of
one class that hold nn.Linear layers. Inside a block the layers come in execution order, as one forward pass of 2
tokens calls them (OPT registers k_proj, v_proj, q_proj but runs q_proj first); a layer that pass does not reach
comes after those of its block, in registration order.

`model_sha256`: the digest of the directory's files a loader reads (`MODEL_FILES`), as prunebench.language.corpus
digests several files: the sha256 of their `sha256sum` listing, in name order.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.language.corpus import file_digests

WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
MODEL_FILES = ("config.json", "generation_config.json", "model*.safetensors", "model.safetensors.index.json")
MODEL_FILES += ("pytorch_model*.bin", "pytorch_model.bin.index.json", "tokenizer*", "special_tokens_map.json")
MODEL_FILES += ("added_tokens.json", "vocab.*", "merges.txt", "chat_template.*")


def load_causal_lm(
    directory: Path | str, *, dtype: torch.dtype | str = torch.float32, tokenizer: Path | str | None = None
) -> tuple[Any, Any]:
    """(the model in eval mode, its tokenizer) from `directory`; the tokenizer from `tokenizer` if given."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    path = Path(directory)
    source = Path(tokenizer) if tokenizer is not None else path
    if not path.is_dir():
        raise ValueError(f"the model directory {path} does not exist")
    if not (path / "config.json").is_file():
        raise ValueError(f"the model directory {path} has no config.json")
    if not any((path / name).is_file() for name in WEIGHTS):
        raise ValueError(f"the model directory {path} has no weights: none of {', '.join(WEIGHTS)}")
    if not any((source / name).is_file() for name in TOKENIZER_FILES):
        raise ValueError(f"{source} has no tokenizer: none of {', '.join(TOKENIZER_FILES)}")
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except (ValueError, KeyError, OSError):
        raise ValueError(
            f"{path / 'config.json'} is not a configuration transformers knows: {model_type(path)}"
        ) from None
    causal = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(config.model_type)
    if causal is None or (config.architectures and causal not in config.architectures):
        saved = ", ".join(config.architectures or [config.model_type])
        raise ValueError(f"the model in {path} is {saved}, not a causal language model ({causal or 'none known'})")
    tok = load_tokenizer(source)
    model, info = AutoModelForCausalLM.from_pretrained(
        path, config=config, dtype=dtype, local_files_only=True, trust_remote_code=False, output_loading_info=True
    )
    if info["missing_keys"]:
        missing = sorted(info["missing_keys"])
        raise ValueError(f"the weights in {path} lack {len(missing)} of the model's tensors, {missing[0]} first")
    vocabulary = min(getattr(config, "vocab_size", None) or 1 << 62, model.get_input_embeddings().num_embeddings)
    if len(tok) > vocabulary:
        raise ValueError(
            f"the tokenizer in {source} has {len(tok)} tokens, more than the model's vocabulary of {vocabulary}"
        )
    return model.eval(), tok


def load_tokenizer(directory: Path | str) -> Any:
    """The Hugging Face tokenizer saved in a local directory (never the hub), or one sentence why not."""
    from transformers import AutoTokenizer

    source = Path(directory)
    if not source.is_dir():
        raise ValueError(f"the tokenizer directory {source} does not exist")
    if not any((source / name).is_file() for name in TOKENIZER_FILES):
        raise ValueError(f"{source} has no tokenizer: none of {', '.join(TOKENIZER_FILES)}")
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=True, trust_remote_code=False)
    except (ValueError, OSError, AttributeError, TypeError) as e:
        raise ValueError(f"the tokenizer in {source} does not load: {first_line(e)}") from None


def model_type(directory: Path) -> str:
    """What config.json says its model_type is, for an error message."""
    try:
        return f"model_type {json.loads((directory / 'config.json').read_text()).get('model_type')!r}"
    except (ValueError, AttributeError, OSError):
        return "not a JSON object"


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def decoder_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """(name, list) of the decoder blocks: the first nn.ModuleList of `num_hidden_layers` modules of one class that
    hold nn.Linear layers (`model.layers` of LLaMA, Mistral, Qwen2/3; `model.decoder.layers` of OPT)."""
    count = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0 or (count and len(module) != count):
            continue
        if len({type(block) for block in module}) == 1 and any(isinstance(m, nn.Linear) for m in module.modules()):
            return name, module
    raise ValueError(
        f"{type(model).__name__} has no list of decoder blocks: no nn.ModuleList of num_hidden_layers ({count}) "
        "modules of one class holding nn.Linear layers"
    )


def prunable_linears(model: nn.Module, include: Sequence[str] | None = None) -> dict[str, nn.Linear]:
    """The decoder blocks' nn.Linear layers by the name of their weight parameter (e.g.
    `model.layers.0.self_attn.q_proj.weight`), block by block in execution order; `include`, fnmatch patterns of
    those names, keeps the layers that match one."""
    prefix, blocks = decoder_blocks(model)
    order: dict[nn.Module, int] = {}

    def called(module: nn.Module, _args: object) -> None:
        order.setdefault(module, len(order))

    hooks = [m.register_forward_pre_hook(called) for m in blocks.modules() if isinstance(m, nn.Linear)]
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            model(input_ids=torch.zeros(1, 2, dtype=torch.long, device=device), use_cache=False)
    finally:
        for hook in hooks:
            hook.remove()
    layers: dict[str, nn.Linear] = {}
    for index, block in enumerate(blocks):
        named = [(n, m) for n, m in block.named_modules() if isinstance(m, nn.Linear)]
        named.sort(key=lambda item: order.get(item[1], len(order)))  # stable: unreached ones keep their order
        layers.update({f"{prefix}.{index}.{n}.weight": m for n, m in named})
    if include is None:
        return layers
    for pattern in include:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in layers):
            raise ValueError(f"the prunable pattern {pattern!r} matches no linear layer of the decoder blocks")
    return {n: m for n, m in layers.items() if any(fnmatch.fnmatchcase(n, p) for p in include)}


def model_files(directory: Path | str) -> list[Path]:
    """The files of `directory` (not its subdirectories) named by a pattern of `MODEL_FILES`, in name order."""
    path = Path(directory)
    if not path.is_dir():
        raise ValueError(f"the model directory {path} does not exist")
    return sorted(f for f in path.iterdir() if f.is_file() and any(fnmatch.fnmatchcase(f.name, p) for p in MODEL_FILES))


def model_sha256(directory: Path | str) -> str:
    """sha256 of the `sha256sum` listing of `model_files(directory)` (of the file itself if there is one)."""
    files = model_files(directory)
    if not files:
        raise ValueError(f"the model directory {directory} has none of the files {', '.join(MODEL_FILES)}")
    return file_digests(files)
