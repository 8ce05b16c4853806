"""The language-model track's core: one-shot pruning of causal LMs under the calibration and perplexity protocol of
SparseGPT (Frantar & Alistarh 2023) and Wanda (Sun et al. 2024), checked against their code in tests/language.

- `corpus`: WikiText-2 raw, C4 shards and plain text from local files, as the references read them, with the
  files' sha256.

Only torch is needed here; nothing imports transformers.
"""

from prunebench.language.corpus import Corpus, read_c4, read_text, read_wikitext2

__all__ = ["Corpus", "read_c4", "read_text", "read_wikitext2"]
