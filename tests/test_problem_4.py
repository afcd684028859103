"""Problem 4: the sign-gradient attack, the attack and transfer stages."""
import json
import re

import pandas as pd
import pytest
import torch

from stages.attack import gallery_positions
from stages.lib.attacks import random_targets, sign_gradient_attack
from stages.lib.data import to_model_input
from stages.lib.errors import StageError
from tests.conftest import (
    assert_clean_failure,
    files_under,
    make_mnist_dir,
    params_with,
    run_main,
    run_stage,
    synthetic_digits,
    write_params,
)

BOUNDS = (-1.0, 1.0)


@pytest.fixture(scope="module")
def batch(fixed_model):
    images, _ = synthetic_digits(40, seed=3)
    x = to_model_input(images)
    with torch.no_grad():
        labels = fixed_model(x).argmax(1)  # attack what the model currently predicts
    return x, labels


def attack(model, x, labels, **kwargs):
    options = {"step_size": 0.02, "max_steps": 60, "bounds": BOUNDS, "batch_size": 16} | kwargs
    return sign_gradient_attack(model, x, labels, **options)


@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("epsilon", [None, 0.1])
def test_pixels_stay_in_bounds_and_epsilon_ball(fixed_model, batch, targeted, epsilon):
    x, labels = batch
    targets = random_targets(labels, torch.Generator().manual_seed(0)) if targeted else None
    adversarial, success, steps = attack(fixed_model, x, labels, targets=targets, epsilon=epsilon, step_size=0.3)
    assert adversarial.min() >= BOUNDS[0] and adversarial.max() <= BOUNDS[1]
    if epsilon is not None:
        assert (adversarial - x).abs().max() <= epsilon + 1e-6
    with torch.no_grad():
        predicted = fixed_model(adversarial).argmax(1)
    if targeted:
        assert (predicted[success] == targets[success]).all()
    else:
        assert (predicted[success] != labels[success]).all()
    assert success.any()
    assert ((steps >= 1) & (steps <= 60)).all()


def test_success_flags_mean_misclassified_and_failures_are_flagged(fixed_model, batch):
    x, labels = batch
    adversarial, success, steps = attack(fixed_model, x, labels, step_size=0.001, max_steps=3)
    with torch.no_grad():
        predicted = fixed_model(adversarial).argmax(1)
    assert torch.equal(success, predicted != labels)
    assert (~success).any() and (steps[~success] == 3).all()


def test_an_image_does_not_change_after_its_success_step(fixed_model, batch):
    x, labels = batch
    short, short_success, short_steps = attack(fixed_model, x, labels, max_steps=20)
    long, long_success, long_steps = attack(fixed_model, x, labels, max_steps=200)
    assert short_success.any()
    assert torch.equal(short[short_success], long[short_success])
    assert torch.equal(short_steps[short_success], long_steps[short_success])
    # and it took exactly `steps` updates of size step_size: the L-inf distance is at most that
    assert ((long - x).abs().flatten(1).amax(1)[long_success] <= 0.02 * long_steps[long_success] + 1e-6).all()


@pytest.mark.parametrize("targeted", [False, True])
def test_batched_attack_agrees_with_one_image_at_a_time(fixed_model, batch, targeted):
    x, labels = batch
    targets = random_targets(labels, torch.Generator().manual_seed(1)) if targeted else None
    batched = attack(fixed_model, x, labels, targets=targets, batch_size=40)
    single = attack(fixed_model, x, labels, targets=targets, batch_size=1)
    assert torch.equal(batched[1], single[1])
    assert torch.equal(batched[2], single[2])


def test_input_and_model_are_left_untouched(fixed_model, batch):
    x, labels = batch
    x_before = x.clone()
    weights_before = [p.detach().clone() for p in fixed_model.parameters()]
    attack(fixed_model, x, labels)
    assert torch.equal(x, x_before)
    assert all(p.grad is None for p in fixed_model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(weights_before, fixed_model.parameters()))


def test_without_early_stopping_every_image_takes_all_steps(fixed_model, batch):
    x, labels = batch
    adversarial, success, steps = attack(fixed_model, x, labels, max_steps=10, early_stop=False)
    _, early_success, early_steps = attack(fixed_model, x, labels, max_steps=10)
    assert (steps == 10).all() and (early_steps < 10).any()
    with torch.no_grad():
        assert torch.equal(success, fixed_model(adversarial).argmax(1) != labels)
    moved = (adversarial - x).abs().flatten(1).amax(1)
    assert torch.allclose(moved, torch.full_like(moved, 0.2), atol=1e-5)  # ten full steps, none clipped here


def test_targets_are_random_and_never_the_true_label():
    labels = torch.arange(10).repeat(500)
    targets = random_targets(labels, torch.Generator().manual_seed(0))
    assert (targets != labels).all()
    assert set(targets.tolist()) == set(range(10))
    assert torch.equal(targets, random_targets(labels, torch.Generator().manual_seed(0)))


def test_gallery_replaces_missing_and_failed_indices(capsys):
    indices = torch.tensor([2, 5, 7, 9, 11])
    success = torch.tensor([True, False, True, True, False])
    assert gallery_positions([7, 5, 4000], indices, success) == [2, 3, 0]
    err = capsys.readouterr().err
    assert "gallery index 5 was not attacked successfully; showing test index 9" in err
    assert "gallery index 4000 is not in the attacked test images; showing test index 2" in err


ATTACK_CHANGES = {
    "model.channels": [4, 8], "model.hidden": 16, "train.epochs": 2,
    "attack.n_images": 30, "attack.max_steps": 100, "attack.step_size": 0.05,
    "attack.gallery.untargeted": [0, 3, 500], "attack.gallery.targeted": [1], "transfer.models": ["model2"]}
ATTACK_PARAMS = params_with(**ATTACK_CHANGES)


def attack_stage(cwd, kind):
    return run_stage("attack", kind, "--data", "data/mnist", "--model", "models/model1.pt", cwd=cwd)


def attack_main(cwd, kind):
    run_main("attack", kind, "--data", "data/mnist", "--model", "models/model1.pt", cwd=cwd)


def transfer_main(cwd):
    run_main("transfer", "--data", "data/mnist", "--models", "models", cwd=cwd)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A working directory with a small synthetic MNIST and two tiny trained models (read-only for tests)."""
    mnist_dir = make_mnist_dir(tmp_path_factory.mktemp("trained"))
    write_params(mnist_dir, ATTACK_PARAMS)
    for name in ("model1", "model2"):
        run_main("train", name, "--data", "data/mnist", "--model", f"models/{name}.pt", cwd=mnist_dir)
    return mnist_dir


@pytest.fixture
def workdir(trained, tmp_path):
    """A private copy of the trained directory, for a test that writes into it."""
    import shutil

    shutil.copytree(trained, tmp_path / "work")
    return tmp_path / "work"


def test_attack_and_transfer_stages(workdir, capsys):
    for kind in ("untargeted", "targeted"):
        attack_main(workdir, kind)
        metrics = json.loads((workdir / f"metrics/attack_{kind}.json").read_text())
        images = pd.read_csv(workdir / f"plots/attack_{kind}/images.csv")
        assert len(images) == 30
        assert 0 < metrics["success_rate"] == pytest.approx(images["success"].mean(), rel=1e-12)
        assert metrics["steps_median"] == images.loc[images["success"], "steps"].quantile(0.5, interpolation="lower")
        won = images[images["success"]]
        if kind == "targeted":
            assert (won["predicted"] == won["target"]).all() and (images["target"] != images["label"]).all()
        else:
            assert (won["predicted"] != won["label"]).all() and (images["target"] == -1).all()
        assert {f"plots/attack_{kind}/figures/gallery.png", f"plots/attack_{kind}/figures/grid.png"} <= set(files_under(workdir))
    assert "gallery index 500 is not in the attacked test images" in capsys.readouterr().err
    transfer_main(workdir)
    transfer = json.loads((workdir / "metrics/transfer.json").read_text())
    sets = pd.read_csv(workdir / "plots/transfer/sets.csv").set_index("set")
    for kind in ("untargeted", "targeted"):
        assert sets.loc[kind, "model1_accuracy"] == 0.0 and sets.loc[kind, "source"] == "model1"
        # transfer made the very images the attack stage reported: as many, and model1 is fooled by each
        images = pd.read_csv(workdir / f"plots/attack_{kind}/images.csv")
        assert sets.loc[kind, "images"] == images["success"].sum()
        assert transfer[kind]["model2_accuracy"] == pytest.approx(sets.loc[kind, "model2_accuracy"], rel=1e-8)
    assert transfer["targeted"]["model2_target_rate"] == pytest.approx(sets.loc["targeted", "model2_target_rate"], rel=1e-8)
    # the metrics hold the seed's headline (its receiver, model2); every receiver's figures are in sets.csv
    assert transfer == {"untargeted": {"model2_accuracy": transfer["untargeted"]["model2_accuracy"]},
                        "targeted": {"model2_accuracy": transfer["targeted"]["model2_accuracy"],
                                     "model2_target_rate": transfer["targeted"]["model2_target_rate"]}}
    assert "plots/transfer/figures/confusion_targeted.png" in files_under(workdir)
    # the per-image record gives back every accuracy of sets.csv, so paired tests can read it
    predictions = pd.read_csv(workdir / "plots/transfer/predictions.csv")
    assert predictions["test_index"].tolist() == list(range(len(predictions)))
    for kind in ("untargeted", "targeted"):
        in_set = predictions[predictions[f"{kind}_model2"] >= 0]
        images = pd.read_csv(workdir / f"plots/attack_{kind}/images.csv")
        assert sorted(in_set["test_index"]) == sorted(images.loc[images["success"], "index"])
        for name in ("model1", "model2"):
            assert (in_set[f"{kind}_{name}"] == in_set["label"]).mean() == pytest.approx(
                sets.loc[kind, f"{name}_accuracy"], abs=1e-8)
    targeted = predictions[predictions["targeted_target"] >= 0]
    assert (targeted["targeted_model2"] == targeted["targeted_target"]).mean() == pytest.approx(
        sets.loc["targeted", "model2_target_rate"], abs=1e-8)


def test_an_attack_that_never_succeeds_is_a_result_and_transfer_handles_it(workdir):
    write_params(workdir, params_with(**ATTACK_CHANGES, **{"attack.epsilon": 1e-9}))
    for kind in ("untargeted", "targeted"):
        attack_main(workdir, kind)
        assert json.loads((workdir / f"metrics/attack_{kind}.json").read_text())["success_rate"] == 0.0
    transfer_main(workdir)
    assert json.loads((workdir / "metrics/transfer.json").read_text())["untargeted"] == {"model2_accuracy": None}


def test_transfer_refuses_the_attacked_model_as_a_receiver(workdir):
    write_params(workdir, params_with(**ATTACK_CHANGES | {"transfer.models": ["model2", "model1"]}))
    with pytest.raises(StageError, match="'transfer.models' names 'model1', the attacked model itself"):
        transfer_main(workdir)


def test_attack_rejects_a_foreign_checkpoint(workdir):
    torch.save({"weights": torch.zeros(3)}, workdir / "models/model1.pt")
    with pytest.raises(StageError, match="models/model1.pt: not a checkpoint of this project's CNN"):
        attack_main(workdir, "untargeted")
    (workdir / "models/model1.pt").write_bytes(b"corrupt")
    assert_clean_failure(attack_stage(workdir, "untargeted"), "models/model1.pt: cannot be read as a checkpoint")
    assert not (workdir / "plots/attack_untargeted").exists()
