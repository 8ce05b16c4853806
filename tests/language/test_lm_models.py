"""prunebench.language.models: tiny random causal LMs of each family the track names (LLaMA with grouped-query
attention, Mistral, Qwen2, Qwen3, OPT) saved with save_pretrained beside a tokenizer, loaded back from the directory
alone, logits equal; their prunable linear layers; and every bad directory is one sentence."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from prunebench.language.models import decoder_blocks, load_causal_lm, model_files, model_sha256, prunable_linears
from prunebench.language.tiny import train_tokenizer

pytest.importorskip("transformers")

SMALL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 64}
DECODER = {**SMALL, "intermediate_size": 128, "num_key_value_heads": 2}
LLAMA_LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"]
LLAMA_LINEARS += ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
OPT_LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "fc1", "fc2"]
TEXT = 'The "assert" statement\n******\n\nAssert statements are a convenient way to insert debugging assertions.\n'


def config_of(family: str, vocab_size: int = 320):
    import transformers

    if family == "opt":
        return transformers.OPTConfig(vocab_size=vocab_size, ffn_dim=128, word_embed_proj_dim=64, **SMALL)
    classes = {"llama": "LlamaConfig", "mistral": "MistralConfig", "qwen2": "Qwen2Config", "qwen3": "Qwen3Config"}
    return getattr(transformers, classes[family])(vocab_size=vocab_size, **DECODER)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([TEXT * 3, "def f(x):\n    return x + 1\n" * 3], vocab_size=300)


def save(directory: Path, family: str, tokenizer, vocab_size: int = 320, head: bool = True):
    from transformers import AutoModel, AutoModelForCausalLM

    torch.manual_seed(0)
    auto = AutoModelForCausalLM if head else AutoModel
    model = auto.from_config(config_of(family, vocab_size)).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return model


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "qwen3", "opt"])
def test_a_saved_model_loads_back_with_its_tokenizer(tmp_path, tokenizer, family) -> None:
    original = save(tmp_path, family, tokenizer)
    model, tok = load_causal_lm(tmp_path)
    ids = torch.tensor([tok(TEXT)["input_ids"]])
    assert ids.tolist() == [tokenizer(TEXT)["input_ids"]] and ids[0, 0] == tok.bos_token_id
    assert tok.decode(ids[0], skip_special_tokens=True) == TEXT
    assert not model.training and type(model) is type(original)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, original(ids).logits)
    if family != "opt":
        attention = model.model.layers[0].self_attn
        assert attention.k_proj.out_features == attention.q_proj.out_features // 2  # grouped-query: 2 of 4 heads


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "qwen3", "opt"])
def test_the_prunable_set_is_every_linear_of_the_blocks_in_execution_order(family) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(config_of(family)).eval()
    prefix = "model.decoder.layers" if family == "opt" else "model.layers"
    expected = OPT_LINEARS if family == "opt" else LLAMA_LINEARS  # OPT registers k, v, q but runs q first
    layers = prunable_linears(model)
    assert decoder_blocks(model) == (prefix, model.get_submodule(prefix))
    assert list(layers) == [f"{prefix}.{block}.{name}.weight" for block in (0, 1) for name in expected]
    assert all(layers[name] is model.get_submodule(name.removesuffix(".weight")) for name in layers)
    mlp = prunable_linears(model, include=["*.fc?.*"] if family == "opt" else ["*.mlp.*"])
    assert list(mlp) == [name for name in layers if ".mlp." in name or ".fc" in name]


def test_the_prunable_set_of_a_model_without_blocks_or_matches_is_one_sentence() -> None:
    from transformers import AutoModelForCausalLM

    with pytest.raises(ValueError, match=r"^Sequential has no list of decoder blocks: [^\n]*$"):
        decoder_blocks(nn.Sequential(nn.Linear(2, 2)))
    model = AutoModelForCausalLM.from_config(config_of("llama"))
    with pytest.raises(ValueError, match=r"^the prunable pattern '\*lm_head\*' matches no linear layer"):
        prunable_linears(model, include=["*q_proj*", "*lm_head*"])


def one_sentence(error: pytest.ExceptionInfo, pattern: str) -> None:
    message = str(error.value)
    assert "\n" not in message and re.search(pattern, message), message


def test_every_bad_model_directory_is_one_sentence(tmp_path, tokenizer) -> None:
    from safetensors.torch import load_file, save_file

    good = tmp_path / "good"
    save(good, "llama", tokenizer)

    def broken(name: str, *remove: str) -> Path:
        directory = tmp_path / name
        shutil.copytree(good, directory)
        for file in remove:
            (directory / file).unlink()
        return directory

    cases = {
        tmp_path / "absent": r"^the model directory .*absent does not exist$",
        broken("no-config", "config.json"): r"^the model directory .*no-config has no config\.json$",
        broken("no-weights", "model.safetensors"): r"no-weights has no weights: none of model\.safetensors, model",
        broken("no-tokenizer", "tokenizer.json", "tokenizer_config.json"): r"no-tokenizer has no tokenizer: none of",
    }
    save(tmp_path / "small-vocab", "llama", tokenizer, vocab_size=280)
    cases[tmp_path / "small-vocab"] = r"has 300 tokens, more than the model's vocabulary of 280$"
    save(tmp_path / "base", "llama", tokenizer, head=False)
    cases[tmp_path / "base"] = r"^the model in .*base is LlamaModel, not a causal language model \(LlamaForCausalLM\)$"
    headless = broken("headless")
    weights = load_file(headless / "model.safetensors")
    save_file({k: v for k, v in weights.items() if k != "lm_head.weight"}, headless / "model.safetensors")
    cases[headless] = r"^the weights in .*headless lack 1 of the model's tensors, lm_head\.weight first$"
    unknown = broken("unknown")
    (unknown / "config.json").write_text('{"model_type": "no-such-model"}')
    cases[unknown] = r"unknown/config\.json is not a configuration transformers knows: model_type 'no-such-model'$"
    invalid = broken("invalid")
    (invalid / "config.json").write_text("[1, 2")
    cases[invalid] = r"invalid/config\.json is not a configuration transformers knows: not a JSON object$"
    for directory, pattern in cases.items():
        with pytest.raises(ValueError) as error:
            load_causal_lm(directory)
        one_sentence(error, pattern)
    with pytest.raises(ValueError) as error:
        load_causal_lm(good, tokenizer=tmp_path / "no-tokenizer")
    one_sentence(error, r"no-tokenizer has no tokenizer")


def test_the_model_digest_covers_config_weights_and_tokenizer(tmp_path, tokenizer) -> None:
    save(tmp_path / "a", "llama", tokenizer)
    names = [f.name for f in model_files(tmp_path / "a")]
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(names)
    (tmp_path / "a" / "README.md").write_text("not hashed")
    digest = model_sha256(tmp_path / "a")
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert model_sha256(tmp_path / "b") == digest
    (tmp_path / "b" / "tokenizer.json").write_text((tmp_path / "b" / "tokenizer.json").read_text() + " ")
    assert model_sha256(tmp_path / "b") != digest
