"""The shipped LLaMA-2-7B protocol (protocols/llama2_7b_wikitext2.yaml) as a user with the files runs it, here with
stand-ins made on the spot in the same layouts: a Hugging Face LLaMA directory saved by `save_pretrained` (tiny,
with its own tokenizer), WikiText-2's raw release files and a C4 json.gz shard. A smoke run (`--limit`) goes through
every method; without it, the dense check refuses a model that does not measure the published 5.12."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prunebench.language import model_sha256
from prunebench.language.corpus import file_digests
from prunebench.results import load_result

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
PROTOCOL = ROOT / "protocols" / "llama2_7b_wikitext2.yaml"
SMALL = ["data.text.seqlen=32", "pruning.calibration.nsamples=4", "model.args.dtype=float32"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch
    from transformers import LlamaForCausalLM

    from prunebench.language import tiny_llama_config, tokenizer_sha256, train_tokenizer

    # This directory's conftest by its path: the name `conftest` is another directory's in a whole-suite run.
    spec = importlib.util.spec_from_file_location("language_conftest", Path(__file__).parent / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    wiki_lines = module.wiki_lines

    root = tmp_path_factory.mktemp("files")
    wiki = root / "wikitext-2-raw"
    wiki.mkdir()
    for split, count, seed in (("train", 400, 0), ("valid", 60, 1), ("test", 80, 2)):
        (wiki / f"wiki.{split}.raw").write_text("".join(line or "\n" for line in wiki_lines(count, seed)))
    shard = root / "c4-train.00000-of-01024.json.gz"
    with gzip.open(shard, "wt", encoding="utf-8") as f:
        for k in range(30):
            f.write(json.dumps({"text": " ".join(wiki_lines(12, 100 + k)), "url": f"https://example.org/{k}"}) + "\n")
    tokenizer = train_tokenizer(wiki_lines(400, 0), 300)
    model_dir = root / "llama-2-7b"
    torch.manual_seed(0)
    LlamaForCausalLM(
        tiny_llama_config(len(tokenizer), layers=2, hidden=32, heads=2, kv_heads=1, intermediate=64, positions=64)
    ).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return {
        "LLAMA2_7B": model_dir,
        "WIKITEXT2": wiki,
        "C4_SHARD": shard,
        "tokenizer_sha256": tokenizer_sha256(tokenizer),
    }


def run(files: dict, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **{k: str(v) for k, v in files.items() if k.isupper()}}
    command = [sys.executable, "-m", "prunebench.cli", "run", str(PROTOCOL), *SMALL, *extra]
    command += ["--results", str(tmp / "r"), "--cache", str(tmp / "c"), "--device", "cpu"]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)


def test_the_llama2_protocol_runs_every_method_on_local_files(files: dict, tmp_path: Path) -> None:
    done = run(files, tmp_path, "--limit", "2")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    records = [load_result(p) for p in sorted((tmp_path / "r").rglob("sparsity-*.json"))]
    assert sorted(r.method.label for r in records) == sorted(
        ["lm_magnitude", "wanda", "sparsegpt", "lm_magnitude_2-4", "wanda_2-4", "sparsegpt_2-4"]
    )
    wiki = files["WIKITEXT2"]
    for record in records:
        assert record.status == "ok" and record.task == "causal_lm" and record.limit == 2, record.reasons
        language = record.language
        assert language is not None and language.tokenizer_sha256 == files["tokenizer_sha256"]
        assert language.data_sha256 == file_digests([wiki / f"wiki.{s}.raw" for s in ("train", "valid", "test")])
        assert language.calibration["files_sha256"] == file_digests([files["C4_SHARD"]])
        assert language.calibration["seqlen"] == 32 and language.calibration["nsamples"] == 4
        assert language.model_sha256 == model_sha256(files["LLAMA2_7B"])
        assert record.sparsity is not None and abs(record.sparsity.achieved - 0.5) <= 0.005
        if record.method.config.get("n_m"):
            assert record.method.taxonomy.granularity == "n:m"


def test_the_dense_check_names_the_published_figure(files: dict, tmp_path: Path) -> None:
    done = run(files, tmp_path, "--methods", "wanda")
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert errors[0].startswith(f"error: {PROTOCOL}:") and "base.expect.test_perplexity" in errors[0]
    assert "not the 5.12 that base.expect states (tolerance 1%)" in errors[0]
    assert not list((tmp_path / "r").rglob("sparsity-*.json"))
