"""Efficiency as hardware sees it: physical compaction of structured models (`compact`, through Torch-Pruning),
sparse kernels where they exist (`sparse`), and timing and memory by torch's own tools (`timing`)."""

from prunebench.efficiency.compact import Compacted, CompactionError, compact, torch_pruning
from prunebench.efficiency.sparse import is_two_four, semi_structured
from prunebench.efficiency.timing import Times, peak_memory, time_forward, weight_bytes

__all__ = [
    "Compacted",
    "CompactionError",
    "Times",
    "compact",
    "is_two_four",
    "peak_memory",
    "semi_structured",
    "time_forward",
    "torch_pruning",
    "weight_bytes",
]
