"""Models: the registry (`registry`), the registered architectures (`small`, `cifar`, built from `blocks`; `causal_lm`),
and the cost accounting of the ledger (`cost`)."""

# Registration order is the order `prunebench models` lists them in.
# isort: off
from prunebench.models import small as _small  # noqa: F401  (registers small_cnn and lenet_300_100)
from prunebench.models import cifar as _cifar  # noqa: F401  (registers the CIFAR architectures)
from prunebench.models import causal_lm as _causal_lm  # noqa: F401  (registers tiny_llama and hf_causal_lm)

# isort: on
from prunebench.models.channels import channel_parameters
from prunebench.models.cost import layer_macs, other_macs
from prunebench.models.registry import MODELS, ModelInfo, build_model, model_files, model_names, register_model

__all__ = [
    "MODELS",
    "ModelInfo",
    "build_model",
    "channel_parameters",
    "layer_macs",
    "model_files",
    "model_names",
    "other_macs",
    "register_model",
]
