"""Problems 1 and 2: loss surfaces and XOR."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageSequence

from stages.lib.surfaces import analytic, autograd_gradients, descend, gradient_magnitudes, grid, observations
from stages.lib.xor import first_solved_epoch, train_xor, xor_init
from stages.xor import read_params as read_xor_params
from tests.conftest import ROOT, files_under, params_with, run_main, write_params

DEFAULT_XOR = read_xor_params(ROOT / "params.yaml")


@pytest.mark.parametrize("x, y", [(1.0, 0.5), (1.0, 0.0), (-2.0, 1.0), (0.5, 0.3)])
def test_analytic_gradients_equal_autograd(x, y):
    W, B = grid((-5, 5), (-5, 5), 0.25)
    surfaces, auto = analytic(W, B, x, y), autograd_gradients(W, B, x, y)
    for name, gradient in auto.items():
        assert torch.allclose(surfaces[name], gradient, rtol=0, atol=1e-9), name


@pytest.mark.parametrize("x, y", [(1.0, 0.5), (1.0, 0.0), (1.0, 1.0), (-3.0, 0.2)])
def test_cross_entropy_dominates_l2_in_value_and_gradient(x, y):
    W, B = grid((-5, 5), (-5, 5), 0.25)
    s = analytic(W, B, x, y)
    assert W.shape == (41, 41)
    assert (s["ce"] >= s["l2"]).all()
    assert (s["ce_grad_w"].abs() >= s["l2_grad_w"].abs()).all()
    # and strictly more where the neuron is wrong: the seed's "CE punishes mistakes more"
    wrong = (s["sigmoid"] - y).abs() > 0.1
    assert (s["ce_grad_w"].abs()[wrong] > s["l2_grad_w"].abs()[wrong]).all()


def test_loss_surfaces_stage_outputs(tmp_path):
    write_params(tmp_path, params_with(**{"loss_surfaces.step": 0.5}))
    run_main("loss_surfaces", cwd=tmp_path)
    metrics = json.loads((tmp_path / "metrics/loss_surfaces.json").read_text())
    observed = pd.read_csv(tmp_path / "plots/loss_surfaces/observations.csv").set_index(["setting", "observation"])["value"]
    assert len(metrics) <= 4
    # at the class label, where the neuron is most wrong: |dL2/dw| vanishes, |dCE/dw| is |x| = 1
    assert metrics["wrong_end_abs_l2_grad_w"] < 1e-3 and abs(metrics["wrong_end_abs_ce_grad_w"] - 1) < 1e-3
    assert observed["class_label", "wrong_end_output"] < 1e-3
    # cross-entropy learns from the confidently wrong start in far fewer steps
    assert 0 < metrics["descent_steps_ce"] * 10 < metrics["descent_steps_l2"]
    assert observed["descent", "steps_l2"] == metrics["descent_steps_l2"]
    for setting in ("seed_target", "class_label"):
        assert observed[setting, "ce_gt_l2_fraction"] == 1.0
        assert observed[setting, "plateau_fraction_l2_grad_w"] > 0 == observed[setting, "plateau_fraction_ce_grad_w"]
        assert observed[setting, "grid_points"] == 21 * 21 and observed[setting, "max_analytic_autograd_diff"] < 1e-6
    assert len(pd.read_csv(tmp_path / "plots/loss_surfaces/grid.csv")) == (5 + 4) * 21 * 21
    descent = pd.read_csv(tmp_path / "plots/loss_surfaces/descent.csv")
    for loss, steps in (("l2", metrics["descent_steps_l2"]), ("ce", metrics["descent_steps_ce"])):
        run = descent[descent["loss"] == loss]
        assert run["step"].iloc[-1] == steps and run["error"].iloc[-1] <= 0.1 < run["error"].iloc[-2]
    assert [f for f in files_under(tmp_path) if "/figures/" in f] == [
        f"plots/loss_surfaces/figures/{name}.png" for name in ("class_label", "descent", "gradient_magnitudes",
                                                                "seed_target")]


@pytest.mark.parametrize("x, label", [(1.0, 1), (1.0, 0), (-2.0, 1), (0.5, 0)])
def test_confidently_wrong_l2_gradient_vanishes_while_cross_entropy_tends_to_x(x, label):
    z = torch.tensor([-30.0, -15.0, 15.0, 30.0], dtype=torch.float64)
    magnitudes = gradient_magnitudes(z, x, label)
    wrong = z < 0 if label == 1 else z > 0
    assert (magnitudes["l2"][wrong] < 1e-5).all()
    assert torch.allclose(magnitudes["ce"][wrong], torch.full((2,), abs(x), dtype=torch.float64), atol=1e-6)
    # on the right side both vanish: there is nothing left to learn
    assert (magnitudes["l2"][~wrong] < 1e-5).all() and (magnitudes["ce"][~wrong] < 1e-5).all()


def test_plateaus_are_flat_gradients_away_from_the_minimum():
    """At y = 0.5, dCE/dw is zero on the line w = -b (S = y, CE's minimum): flat, but not a plateau."""
    W, B = grid((-5, 5), (-5, 5), 0.25)
    s = analytic(W, B, 1.0, 0.5)
    found = observations(s, autograd_gradients(W, B, 1.0, 0.5), 0.5, flat_threshold=1e-3, wrong_by=0.25)
    assert (s["ce_grad_w"].abs() < 1e-3).double().mean().item() == 41 / 1681  # the minimum line
    assert found["plateau_fraction_ce_grad_w"] == 0.0
    l2_flat_ends = (s["l2_grad_w"].abs() < 1e-3) & ((s["sigmoid"] - 0.5).abs() >= 0.25)
    assert found["plateau_fraction_l2_grad_w"] == l2_flat_ends.double().mean().item() > 0.05


@pytest.mark.parametrize("x, label, start", [(1.0, 1, (-4.0, -4.0)), (1.0, 0, (3.0, 3.0)), (-2.0, 1, (3.0, 0.0))])
def test_cross_entropy_reaches_the_target_first_from_a_confidently_wrong_start(x, label, start):
    runs = {loss: descend(loss, x, label, start, lr=0.5, max_steps=100_000, target_error=0.1) for loss in ("l2", "ce")}
    (l2_errors, l2_steps), (ce_errors, ce_steps) = runs["l2"], runs["ce"]
    assert ce_steps is not None and l2_steps is not None and 10 * ce_steps < l2_steps
    for errors, steps in ((l2_errors, l2_steps), (ce_errors, ce_steps)):
        assert len(errors) == steps + 1 and errors[-1] <= 0.1 < errors[-2]
        assert all(later <= earlier for earlier, later in zip(errors, errors[1:]))


def test_descent_that_misses_the_target_says_so():
    errors, steps = descend("l2", 1.0, 1, (-8.0, -8.0), lr=0.5, max_steps=50, target_error=0.1)
    assert steps is None and len(errors) == 51 and errors[-1] > 0.99


def xor_run(p, activation, seeds):
    return train_xor(xor_init(seeds, p.hidden, p.init, p.init_scale), activation, p.lr, p.epochs)


def test_tanh_network_solves_xor_on_the_default_seed():
    p = DEFAULT_XOR
    history, _, _ = xor_run(p, "tanh", [p.seed])
    first = first_solved_epoch(history["accuracy"])[0]
    assert first is not None and first <= 1899
    assert history["accuracy"][-1, 0] == 1.0
    assert history["loss"][-1, 0] < history["loss"][0, 0]


def test_linear_network_learns_what_it_can_but_never_exceeds_75_percent():
    history, _, final = xor_run(DEFAULT_XOR, "linear", range(50))
    assert history["accuracy"].max() <= 0.75
    # it does learn: its loss falls towards ln 2, the best any linear model reaches on XOR (all outputs 0.5)
    loss = history["loss"]
    assert (loss[-1] < loss[0]).all() and (loss[-1] >= math.log(2) - 1e-9).all()
    assert (loss[-1] - math.log(2)).max() < 0.5 * (loss[0] - math.log(2)).max()
    initial = xor_init(range(50), DEFAULT_XOR.hidden, DEFAULT_XOR.init, DEFAULT_XOR.init_scale)
    assert not torch.equal(final["w1"], initial["w1"])


def test_batched_seeds_train_exactly_like_single_runs():
    p = DEFAULT_XOR.model_copy(update={"epochs": 200})
    together, _, final = xor_run(p, "tanh", [3, 7])
    alone, _, final7 = xor_run(p, "tanh", [7])
    assert torch.allclose(together["loss"][:, 1], alone["loss"][:, 0], rtol=1e-12, atol=0)
    assert torch.allclose(final["w1"][1], final7["w1"][0], rtol=1e-12, atol=0)


@pytest.mark.parametrize("hidden", [1, 2, 3])
def test_xor_stage_outputs(tmp_path, hidden):
    write_params(tmp_path, params_with(**{"xor.epochs": 100, "xor.n_seeds": 4, "xor.snapshot_epochs": [0, 100],
                                          "xor.gif_every": 50, "xor.hidden": hidden}))
    run_main("xor", cwd=tmp_path)
    metrics = json.loads((tmp_path / "metrics/xor.json").read_text())
    variants = pd.read_csv(tmp_path / "plots/xor/variants.csv").set_index("variant")
    assert variants.loc["linear", "accuracy"] <= 0.75 and variants.loc["linear", "max_final_accuracy_over_seeds"] <= 0.75
    assert metrics["linear"]["seeds_solved_fraction"] == variants.loc["linear", "seeds_solved_fraction"] == 0.0
    assert variants.loc["linear", "seeds"] == 4
    assert len(pd.read_csv(tmp_path / "plots/xor/history.csv")) == 101
    with Image.open(tmp_path / "plots/xor/figures/nonlinear_boundaries.gif") as gif:  # one frame per 50 epochs
        frames = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(gif)]
    assert len(frames) == 3 and frames[0].shape == frames[2].shape
    assert not np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[1], frames[2])
    assert ("plots/xor/figures/nonlinear_hidden.png" in files_under(tmp_path)) == (hidden == 2)
