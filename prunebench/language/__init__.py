"""The language-model track's core: one-shot pruning of causal LMs under the calibration and perplexity protocol of
SparseGPT (Frantar & Alistarh 2023) and Wanda (Sun et al. 2024), checked against their code in tests/language.

- `corpus`: WikiText-2 raw, C4 shards and plain text from local files, as the references read them, with the
  files' sha256.
- `calibration`: the references' seeded calibration windows (C4, WikiText-2) and `check_seqlen`.
- `perplexity`: the references' WikiText-2 (and SparseGPT's C4) perplexity, and a sliding-window variant.
- `accumulators`: what pruning gathers of a layer's inputs (Wanda's `InputStats`, SparseGPT's `Hessian`).
- `kernels`: magnitude, Wanda and SparseGPT on one layer's weight, unstructured and N:M.
- `decoder`, `layerwise`: the references' layer-by-layer calibration loop over a causal LM's decoder layers.
- `models`: a Hugging Face causal LM and its tokenizer from a local directory only, and its prunable set.
- `tiny`: the embedded quickstart's corpus (Python's pydoc_data topics), tokenizer and tiny LLaMA configuration.
- `layerwise`: the references' loop over a model's decoder layers, calibration inputs caught and carried forward.

Only torch is needed here; a model and its tokenizer (transformers, tokenizers: `pip install 'prunebench[lm]'`)
come in as callables (`encode`, `logits`), so nothing imports transformers.
"""

from prunebench.language.accumulators import Hessian, InputStats
from prunebench.language.calibration import (
    Calibration,
    Encode,
    c4_calibration,
    check_seqlen,
    hf_encode,
    wikitext2_calibration,
)
from prunebench.language.corpus import Corpus, read_c4, read_text, read_wikitext2
from prunebench.language.kernels import SparseGPTResult, magnitude_mask, sparsegpt_prune, wanda_mask
from prunebench.language.layerwise import (
    SPARSEGPT_LLAMA_SEQUENTIAL,
    Accumulator,
    LayerRecord,
    Layerwise,
    Prune,
    Statistic,
    layerwise,
)
from prunebench.language.models import decoder_blocks, load_causal_lm, load_tokenizer, model_sha256, prunable_linears
from prunebench.language.perplexity import (
    Logits,
    c4_validation_ids,
    hf_logits,
    perplexity,
    sliding_perplexity,
    wikitext2_ids,
    windows,
)
from prunebench.language.tiny import (
    Topics,
    read_topics,
    tiny_llama_config,
    tokenizer_sha256,
    topics_mismatch,
    train_tokenizer,
)

__all__ = [
    "SPARSEGPT_LLAMA_SEQUENTIAL",
    "Accumulator",
    "Calibration",
    "Corpus",
    "Encode",
    "Hessian",
    "InputStats",
    "LayerRecord",
    "Layerwise",
    "Logits",
    "Prune",
    "SparseGPTResult",
    "Statistic",
    "Topics",
    "c4_calibration",
    "c4_validation_ids",
    "check_seqlen",
    "decoder_blocks",
    "hf_encode",
    "hf_logits",
    "layerwise",
    "load_causal_lm",
    "load_tokenizer",
    "magnitude_mask",
    "model_sha256",
    "perplexity",
    "prunable_linears",
    "read_c4",
    "read_text",
    "read_topics",
    "read_wikitext2",
    "sliding_perplexity",
    "sparsegpt_prune",
    "tiny_llama_config",
    "tokenizer_sha256",
    "topics_mismatch",
    "train_tokenizer",
    "wanda_mask",
    "wikitext2_calibration",
    "wikitext2_ids",
    "windows",
]
