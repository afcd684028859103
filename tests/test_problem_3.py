"""Problem 3: the training loop, the train and sweep stages, the sweep summary."""
import json
import math

import pandas as pd
import pytest
import torch

from stages.lib.models import mnist_cnn
from stages.lib.training import load_mnist_tensors, summarize, train_classifier
from tests.conftest import assert_clean_failure, files_under, params_with, run_stage, write_params

TINY = {"model.channels": [4, 8], "model.hidden": 16, "train.epochs": 2, "sweep.epochs": 2}


def train_tiny(mnist_dir, lr=0.1, epochs=3, seed=0):
    train, test = load_mnist_tensors(mnist_dir / "data/mnist", torch.device("cpu"))
    torch.manual_seed(seed)
    model = mnist_cnn([4, 8], 5, 16)
    history, diverged, _ = train_classifier(model, train, test, epochs=epochs, batch_size=32, lr=lr,
                                            momentum=0.0, seed=seed, eval_batch_size=100)
    return model, history, diverged


def test_loss_falls_on_a_small_synthetic_set(mnist_dir):
    _, history, diverged = train_tiny(mnist_dir)
    assert not diverged
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert history[-1]["test_acc"] > 0.9


def test_training_is_bit_identical_on_a_rerun(mnist_dir):
    model_a, history_a, _ = train_tiny(mnist_dir, epochs=2)
    model_b, history_b, _ = train_tiny(mnist_dir, epochs=2)
    assert history_a == history_b
    assert all(torch.equal(a, b) for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values()))
    _, history_c, _ = train_tiny(mnist_dir, epochs=2, seed=1)
    assert history_c != history_a


def test_a_diverging_learning_rate_is_recorded_not_raised(mnist_dir):
    _, history, diverged = train_tiny(mnist_dir, lr=1e6, epochs=5)
    assert diverged and len(history) < 5
    assert not math.isfinite(history[-1]["train_loss"])
    metrics = summarize(history, diverged, 1.0, 600)
    assert metrics["diverged"] is True and metrics["epochs"] == len(history)


def test_train_stage_writes_model_metrics_and_curves(mnist_dir):
    write_params(mnist_dir, params_with(**TINY))
    result = run_stage("train", "model2", cwd=mnist_dir)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((mnist_dir / "metrics/train/model2.json").read_text())
    assert metrics["seed"] == 2 and metrics["epochs"] == 2 and metrics["timing"]["train_images_per_s"] > 0
    curves = pd.read_csv(mnist_dir / "plots/train/model2.csv")
    assert list(curves.columns) == ["epoch", "train_loss", "train_acc", "test_loss", "test_acc"]
    state = torch.load(mnist_dir / "models/model2.pt", weights_only=True)
    assert set(state) == set(mnist_cnn([4, 8], 5, 16).state_dict())


def test_sweep_point_that_diverges_still_writes_outputs_and_summary_marks_it(mnist_dir):
    params = params_with(**TINY, **{"sweep.batch_size": [32], "sweep.lr": [1000000.0],
                                    "sweep.extra.batch_size": [64], "sweep.extra.lr": [0.1]})
    write_params(mnist_dir, params)
    for batch_size, lr in (("32", "1000000.0"), ("64", "0.1")):
        result = run_stage("sweep", "--batch-size", batch_size, "--lr", lr, cwd=mnist_dir)
        assert result.returncode == 0, result.stderr
    assert json.loads((mnist_dir / "metrics/sweep/32-1000000.0.json").read_text())["diverged"] is True
    result = run_stage("sweep_summary", cwd=mnist_dir)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(mnist_dir / "plots/sweep_summary/table.csv")
    assert table.set_index("point")["diverged"].to_dict() == {"32-1000000.0": True, "64-0.1": False}
    summary = json.loads((mnist_dir / "metrics/sweep_summary.json").read_text())
    assert summary == {"points": 2, "diverged": 1, "best_point": "64-0.1", "best_test_acc": table["best_test_acc"].max()}
    assert "plots/sweep_summary/figures/overlay_test_acc.png" in files_under(mnist_dir)


def test_the_sweep_has_exactly_the_seeds_ten_points_as_stages(dvc_project):
    names = dvc_project.stage_names()
    sweep = sorted(n for n in names if n.startswith("sweep@") or n.startswith("sweep_extra@"))
    expected = [f"sweep@{b}-{lr}" for b in (32, 64, 128) for lr in (0.1, 0.01, 0.001)] + ["sweep_extra@128-1e-05"]
    assert sweep == sorted(expected)


@pytest.mark.parametrize("args, needle", [
    (["--batch-size", "0", "--lr", "0.1"], "'sweep.batch_size' must be an integer >= 1, got 0"),
    (["--batch-size", "32", "--lr", "-0.1"], "'sweep.lr' must be a number > 0, got -0.1"),
])
def test_sweep_bad_point_gives_one_line_and_no_outputs(mnist_dir, args, needle):
    write_params(mnist_dir, params_with(**TINY))
    before = files_under(mnist_dir)
    assert_clean_failure(run_stage("sweep", *args, cwd=mnist_dir), needle)
    assert files_under(mnist_dir) == before


@pytest.mark.parametrize("stage, changes, needle", [
    ("sweep_summary", {"sweep.lr": []}, "'sweep.lr' must be a list of at least 1 number"),
    ("sweep_summary", {"sweep.extra.batch_size": [0]}, "'sweep.extra.batch_size[0]'"),
    ("train", {"train.batch_size": 0}, "'train.batch_size'"),
    ("train", {"train.lr": -0.01}, "'train.lr'"),
    ("train", {"model.kernel_size": 4}, "'model.kernel_size' must be odd"),
])
def test_bad_training_params_give_one_line_and_no_outputs(mnist_dir, stage, changes, needle):
    write_params(mnist_dir, params_with(**TINY, **changes))
    before = files_under(mnist_dir)
    args = ["model1"] if stage == "train" else []
    assert_clean_failure(run_stage(stage, *args, cwd=mnist_dir), needle)
    assert files_under(mnist_dir) == before


def test_unknown_model_name_and_corrupt_data(mnist_dir):
    write_params(mnist_dir, params_with(**TINY))
    assert_clean_failure(run_stage("train", "model3", cwd=mnist_dir), "missing key 'train.models.model3.seed'")
    (mnist_dir / "data/mnist/test.pt").write_bytes(b"not a torch file")
    assert_clean_failure(run_stage("train", "model1", cwd=mnist_dir), "data/mnist/test.pt: cannot be read")
    assert not (mnist_dir / "models").exists()
