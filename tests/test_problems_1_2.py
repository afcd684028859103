"""Problems 1 and 2: loss surfaces and XOR."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageSequence

from stages.lib.surfaces import analytic, autograd_gradients, grid
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
    assert metrics["ce_gt_l2_fraction"] == 1.0
    assert metrics["flat_fraction_l2_grad_w"] > metrics["flat_fraction_ce_grad_w"]
    observed = pd.read_csv(tmp_path / "plots/loss_surfaces/observations.csv").set_index("observation")["value"]
    assert observed["max_abs_ce_grad_w"] > observed["max_abs_l2_grad_w"]
    assert observed["grid_points"] == 21 * 21 and observed["max_analytic_autograd_diff"] < 1e-6
    assert observed["ce_gt_l2_fraction"] == metrics["ce_gt_l2_fraction"]
    assert len(pd.read_csv(tmp_path / "plots/loss_surfaces/grid.csv")) == 7 * 21 * 21
    assert "plots/loss_surfaces/figures/all.png" in files_under(tmp_path)


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
