"""Problem 4: the sign-gradient attack, the attack and transfer stages."""
import json

import pytest
import torch
from torch import nn

from stages.attack import gallery_positions
from stages.lib.attacks import random_targets, sign_gradient_attack
from stages.lib.training import to_model_input
from tests.conftest import (assert_clean_failure, files_under, make_mnist_dir, params_with, run_stage,
                            synthetic_digits, write_params)

BOUNDS = (-1.0, 1.0)


@pytest.fixture(scope="module")
def fixed_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.Tanh(), nn.Linear(32, 10))
    for p in model.parameters():
        p.requires_grad_(True)
    return model.eval()


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


ATTACK_PARAMS = params_with(**{
    "model.channels": [4, 8], "model.hidden": 16, "train.epochs": 2,
    "attack.n_images": 30, "attack.max_steps": 100, "attack.step_size": 0.05,
    "attack.gallery.untargeted": [0, 3, 500], "attack.gallery.targeted": [1]})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A working directory with a small synthetic MNIST and two tiny trained models."""
    mnist_dir = make_mnist_dir(tmp_path_factory.mktemp("trained"))
    write_params(mnist_dir, ATTACK_PARAMS)
    for name in ("model1", "model2"):
        assert run_stage("train", name, cwd=mnist_dir).returncode == 0
    return mnist_dir


def test_attack_and_transfer_stages(trained):
    write_params(trained, ATTACK_PARAMS)
    for kind in ("untargeted", "targeted"):
        result = run_stage("attack", kind, cwd=trained)
        assert result.returncode == 0, result.stderr
        metrics = json.loads((trained / f"metrics/attack_{kind}.json").read_text())
        assert metrics["images_attacked"] == 30 and metrics["successes"] > 0
        assert sum(metrics["predicted_histogram"].values()) == metrics["successes"]
        saved = torch.load(trained / f"data/adversarial/{kind}.pt", weights_only=True)
        assert len(saved["images"]) == 30 and (saved["targets"] != saved["labels"]).all()
        assert {f"plots/attack_{kind}/figures/gallery.png", f"plots/attack_{kind}/figures/grid.png"} <= set(files_under(trained))
    assert "gallery index 500 is not in the attacked test images" in run_stage("attack", "untargeted", cwd=trained).stderr
    result = run_stage("transfer", cwd=trained)
    assert result.returncode == 0, result.stderr
    transfer = json.loads((trained / "metrics/transfer.json").read_text())
    for kind in ("untargeted", "targeted"):
        assert transfer[kind]["model1_accuracy"] == 0.0
        assert 0.0 <= transfer[kind]["model2_accuracy"] <= 1.0
    assert "model2_target_rate" in transfer["targeted"]
    assert "plots/transfer/figures/confusion_targeted.png" in files_under(trained)


@pytest.mark.parametrize("changes, needle", [
    ({"attack.step_size": 0}, "'attack.step_size' must be a number > 0"),
    ({"attack.max_steps": 0}, "'attack.max_steps' must be an integer >= 1"),
    ({"attack.epsilon": -0.1}, "'attack.epsilon'"),
    ({"attack.model": "model3"}, "'attack.model' must be one of model1, model2"),
])
def test_attack_bad_params_give_one_line_and_no_outputs(trained, changes, needle):
    params = params_with(**{"model.channels": [4, 8], "model.hidden": 16, **changes})
    write_params(trained, params)
    before = files_under(trained)
    assert_clean_failure(run_stage("attack", "targeted", cwd=trained), needle)
    assert files_under(trained) == before


def test_attack_rejects_a_checkpoint_of_another_architecture(trained):
    write_params(trained, params_with(**{"model.channels": [8, 8], "model.hidden": 16}))
    assert_clean_failure(run_stage("attack", "untargeted", cwd=trained),
                         "models/model1.pt: weights do not match params 'model'")
