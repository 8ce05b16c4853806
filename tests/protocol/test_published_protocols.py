"""The protocols that replicate published recipes, field by field against the authors' own code and configs (each
value below names the file and line it was read from), and the published figures shipped beside them: each file
belongs to its protocol's current recipe and pairs every row with a method and sparsity the protocol runs.

Renda et al. 2020: lottery-ticket/rewinding-iclr20-public at 273e67d ("Code release"), paths under vision/.
Tanaka et al. 2020: ganguli-lab/Synaptic-Flow, its released results' args.json (added in 384c544) and the code of its
first public commit, 432dd64, the one beside those results.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from prunebench.data import load_data
from prunebench.protocol import DataSpec, Protocol, load_protocol
from prunebench.report.published import load_published, recipe_hash
from prunebench.testing import run_cli, write_image_folder

ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = ROOT / "protocols"
RENDA = ["renda_resnet56_cifar10", "renda_resnet110_cifar10"]


def protocol(name: str) -> Protocol:
    return load_protocol(PROTOCOLS / f"{name}.yaml")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("generated")
    return {
        "CIFAR10_ROOT": write_image_folder(root / "cifar10", 10, 20, 4),
        "CIFAR100_ROOT": write_image_folder(root / "cifar100", 100, 10, 2),
    }


# ---- Renda, Frankle & Carbin 2020 ---------------------------------------------------------------------------------
RENDA_BASE = {
    "epochs": 182,  # gpu-src/official/resnet/cifar10_main.py:240 train_epochs=182 (README.md:30 max_train_steps 71108)
    "batch_size": 128,  # cifar10_main.py:242 batch_size=128; gpu-src/README.md:22 --batch_size 128
    "lr": 0.1,  # resnet_run_loop.py:229 base_lr=0.1, times batch_size / batch_denom (cifar10_main.py:200: 128 / 128)
    "milestones": [91, 136],  # cifar10_main.py:201 boundary_epochs=[91, 136, 182] (182: the end)
    "gamma": 0.1,  # cifar10_main.py:202 decay_rates=[1, 0.1, 0.01, 0.01]
    "momentum": 0.9,  # cifar10_main.py:224 momentum=0.9
    "nesterov": False,  # resnet_run_loop.py:379 tf.train.MomentumOptimizer(learning_rate, momentum)
    "weight_decay": 0.0002,  # cifar10_main.py:206 weight_decay = 2e-4, on every variable (213-214: loss_filter_fn True)
    "mixed_precision": False,  # utils/flags/_performance.py:114 dtype default "fp32"
}
RENDA_RETRAIN_EPOCHS = 90  # one of plot/pruned_dataframe.pkl's retrain_time values (10, 30, ..., 170, 182)
RENDA_REWIND = 92  # 182 - 90: gpu-src/README.md:26, checkpoint iteration 35951 = epoch 92.04 of 390.625 steps
RENDA_FINETUNE_LR = 0.001  # gpu-src/README.md:78 --lottery_force_learning_rate "0.001" (lottery/lottery.py:225-228)
RENDA_RATE = 0.2  # the data's densities are 0.8^k: 20 % of the remaining weights a round


def recipe(spec: object) -> dict[str, object]:
    o, s = spec.optimizer, spec.schedule  # type: ignore[attr-defined]
    return {
        "epochs": spec.epochs,  # type: ignore[attr-defined]
        "batch_size": spec.batch_size,  # type: ignore[attr-defined]
        "lr": o.lr,
        "milestones": s.milestones,
        "gamma": s.gamma,
        "momentum": o.momentum,
        "nesterov": o.nesterov,
        "weight_decay": o.weight_decay,
        "mixed_precision": spec.mixed_precision,  # type: ignore[attr-defined]
    }


@pytest.mark.parametrize("name", RENDA)
def test_renda_rewinding_protocols_are_the_authors_recipe(name: str) -> None:
    p = protocol(name)
    assert p.model.name == "cifar_" + name.split("_")[1]  # gpu-src/README.md:16 SIZE "56,110"
    assert p.data.name == "cifar10" and p.data.augmentation == "flip_crop"  # cifar10_main.py:94-103
    assert recipe(p.base) == RENDA_BASE and p.base.schedule.name == "multistep"
    # lottery/prune_functions.py:206-218 prune_all_to_global_x: one threshold over every masked weight, the first
    # convolution, the shortcut projections and the dense layer included (resnet_model.py:115-123, 595-615).
    assert p.pruning.prunable.model_dump() == {
        "layer_types": ["conv", "linear"],
        "include_first": True,
        "include_last": True,
        "exclude": [],
    }
    assert p.pruning.rewind_epoch == RENDA_REWIND
    # Weight rewinding and LR rewinding both retrain with the dense run's schedule from the rewind point on.
    assert recipe(p.retrain) == {**RENDA_BASE, "epochs": RENDA_RETRAIN_EPOCHS}
    assert (p.retrain.schedule.span_epochs, p.retrain.schedule.start_epoch) == (182, RENDA_REWIND)
    for regime in ("weight_rewinding", "lr_rewinding"):
        assert p.retraining_recipe(regime).spec == p.retrain, regime
    assert {m.name for m in p.methods} == {"lottery_ticket", "lr_rewinding"}
    densities = [round(1 - s, 12) for s in p.pruning.sparsities]
    assert densities == sorted((round(0.8**k, 12) for k in range(1, len(densities) + 1)), reverse=True)
    for m in p.methods:
        assert m.config == {"rate": RENDA_RATE, "round_epochs": RENDA_RETRAIN_EPOCHS}
        assert m.budget is not None and m.budget.pruning_epochs == RENDA_RETRAIN_EPOCHS * (len(densities) - 1)


@pytest.mark.parametrize("name", RENDA)
def test_renda_finetune_protocols_share_the_dense_models_and_fine_tune_at_0_001(name: str) -> None:
    rewinding, finetune = protocol(name), protocol(name + "_finetune")
    for seed in rewinding.seeds:
        assert finetune.base_key(seed) == rewinding.base_key(seed)
    assert finetune.pruning.sparsities == rewinding.pruning.sparsities
    fine_tuning = {**RENDA_BASE, "epochs": RENDA_RETRAIN_EPOCHS, "lr": RENDA_FINETUNE_LR, "milestones": []}
    assert recipe(finetune.retrain) == fine_tuning and finetune.retrain.schedule.name == "constant"
    (method,) = finetune.methods
    assert method.name == "imp_fine_tune" and method.config == {"rate": RENDA_RATE, "round_epochs": 90}


# ---- Tanaka, Kunin, Yamins & Ganguli 2020 -------------------------------------------------------------------------
ARGS = "Results/data/0520_2020_cifar100_lottery_vgg16_bn/args.json"
SYNFLOW_TRAIN = {
    "epochs": 160,  # args.json:24 "post_epochs": 160 (:25 "pre_epochs": 0: pruned at initialization)
    "batch_size": 128,  # args.json:47 "train_batch_size": 128
    "lr": 0.1,  # args.json:12 "lr": 0.1
    "milestones": [60, 120],  # args.json:14-17 "lr_drops": [60, 120]
    "gamma": 0.1,  # args.json:13 "lr_drop_rate": 0.1
    "momentum": 0.9,  # args.json:23 "optimizer": "momentum" -> Utils/load.py:194 SGD momentum 0.9, nesterov True
    "nesterov": True,
    "weight_decay": 0.0001,  # args.json:49 "weight_decay": 0.0001
    "mixed_precision": False,  # train.py:6-21: float32 throughout
}
SYNFLOW_SCORING = 10 * 100  # args.json:30 "prune_dataset_ratio": 10, times CIFAR-100's classes (singleshot.py:23)
SYNFLOW_ITERATIONS = 100  # args.json:31 "prune_epochs": 100, SynFlow's alone (Experiments/singleshot.py:62-67)
SYNFLOW_PRUNE_BATCH = 256  # args.json:27 "prune_batch_size": 256
SYNFLOW_MEAN_STD = ((0.507, 0.487, 0.441), (0.267, 0.256, 0.276))  # Utils/load.py:53


def test_synflow_protocol_is_the_authors_recipe(generated: dict[str, Path]) -> None:
    p = protocol("synflow_vgg16bn_cifar100")
    assert p.data.name == "cifar100" and p.data.augmentation == "flip_crop"  # args.json:7; Utils/load.py:36-37
    assert p.model.name == "cifar_vgg16_bn" and not p.model.args  # args.json:19-20 vgg16-bn, model_class lottery
    assert recipe(p.base) == SYNFLOW_TRAIN and recipe(p.retrain) == SYNFLOW_TRAIN
    # args.json:8 dense_classifier false, :28-29 prune_batchnorm and prune_bias false, :18 mask_scope global.
    assert p.pruning.prunable.include_first and p.pruning.prunable.include_last
    assert p.pruning.prunable.layer_types == ["conv", "linear"]
    # singleshot.py:60 keeps 10^-x of the weights (compression 10^x): x = 0.25 to 3 by 0.25.
    assert p.pruning.sparsities == [round(1 - 10 ** (-k / 4), 6) for k in range(1, 13)]
    assert p.pruning.scoring_batch_size == SYNFLOW_PRUNE_BATCH
    methods = {m.label or m.name: m for m in p.methods}
    assert methods["synflow"].config == {"iterations": SYNFLOW_ITERATIONS, "schedule": "exponential"}  # prune.py:13
    # prune.py:8 model.eval() while scoring; Pruners/pruners.py:117 GraSP's loss without a temperature.
    assert methods["snip"].config == {"examples": SYNFLOW_SCORING, "batch_norm": "eval"}
    assert methods["grasp"].config == {"temperature": 1.0, "samples_per_class": 10, "batch_norm": "eval"}
    assert p.pruning.scoring_examples >= SYNFLOW_SCORING
    # Pruners/pruners.py:83-89 Mag (|w| at initialization), :74-80 Rand (random scores), ranked globally.
    assert methods["magnitude_init"].name.endswith("init_pruning:MagnitudeAtInit")
    assert methods["random_init"].name.endswith("init_pruning:RandomAtInit")
    ours = load_data(DataSpec(name="cifar100", root=str(generated["CIFAR100_ROOT"]))).train.normalization
    for theirs, here in zip(SYNFLOW_MEAN_STD, (ours.mean, ours.std), strict=True):
        assert here == pytest.approx(theirs, abs=6e-4)  # theirs rounded to three digits


# ---- the published figures ------------------------------------------------------------------------------------------
PUBLISHED = sorted((PROTOCOLS / "published").glob("*.csv"))


@pytest.mark.parametrize("path", PUBLISHED, ids=[p.stem for p in PUBLISHED])
def test_each_published_file_belongs_to_its_protocols_current_recipe(path: Path) -> None:
    file = load_published(path)
    p = protocol(file.protocol)
    assert path.stem == p.name
    assert file.meta["setup"] == recipe_hash(p.hashed_content()), "the protocol's recipe changed: re-derive the hash"
    runs = {(m.label or m.name, s) for m in p.methods for s in (m.sparsities or p.pruning.sparsities)}
    rows = {(r.method, r.sparsity) for r in file.rows}
    assert rows <= runs, rows - runs
    if p.name.startswith(("renda_", "synflow_")):  # every setting these protocols run has its figure
        assert rows == runs


@pytest.mark.parametrize("name", [*RENDA, *(n + "_finetune" for n in RENDA), "synflow_vgg16bn_cifar100"])
def test_the_shipped_protocols_validate_on_generated_data(
    name: str, generated: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in generated.items():
        monkeypatch.setenv(key, str(value))
    code, out, err = run_cli(capsys, "validate", str(PROTOCOLS / f"{name}.yaml"))
    assert code == 0, err
    assert f"name: {name}" in out
