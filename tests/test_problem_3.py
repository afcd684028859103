"""Problem 3: the training loop, the train and sweep stages, the sweep summary."""
import json
import math
import re

import pandas as pd
import pytest
import torch

from stages.lib.data import load_model_inputs
from stages.lib.errors import StageError
from stages.lib.models import CnnSpec, load_cnn, seeded_cnn
from stages.lib.training import Schedule, summarize, train_epochs
from tests.conftest import files_under, params_with, run_main, run_stage, write_params

TINY = {"model.channels": [4, 8], "model.hidden": 16, "train.epochs": 2, "sweep.epochs": 2}


def train_tiny(mnist_dir, lr=0.1, epochs=3, seed=0, momentum=0.0, static_steps=None):
    train, test = load_model_inputs(mnist_dir / "data/mnist", torch.device("cpu"))
    model = seeded_cnn(CnnSpec(channels=[4, 8], kernel_size=5, hidden=16), seed, torch.device("cpu"))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    schedule = Schedule(epochs=epochs, batch_size=32, eval_batch_size=100)
    history = list(train_epochs(model, train, test, schedule, optimizer, seed=seed, static_steps=static_steps))
    return model, history, summarize(history)["diverged"]


def train_stage(cwd, name):
    return run_stage("train", name, "--data", "data/mnist", "--model", f"models/{name}.pt", cwd=cwd)


def train_main(cwd, name):
    run_main("train", name, "--data", "data/mnist", "--model", f"models/{name}.pt", cwd=cwd)


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


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_the_gpu_path_static_step_trains_exactly_as_the_plain_loop(mnist_dir, momentum):
    # the step function a GPU captures as a CUDA graph, run eagerly here: the same batches (the partial
    # last one included: the set does not divide by 32), the same weights and history, bit for bit
    train, _ = load_model_inputs(mnist_dir / "data/mnist", torch.device("cpu"))
    assert len(train[1]) % 32
    plain_model, plain, _ = train_tiny(mnist_dir, epochs=2, momentum=momentum, static_steps=False)
    static_model, static, _ = train_tiny(mnist_dir, epochs=2, momentum=momentum, static_steps=True)
    assert static == plain
    assert all(torch.equal(a, b) for a, b in zip(static_model.state_dict().values(),
                                                 plain_model.state_dict().values()))


def test_a_diverging_learning_rate_is_recorded_not_raised(mnist_dir):
    _, history, diverged = train_tiny(mnist_dir, lr=1e6, epochs=5)
    assert diverged and len(history) < 5
    assert not math.isfinite(history[-1]["train_loss"])
    assert all(math.isfinite(row["train_loss"]) for row in history[:-1])  # it stopped at the first bad epoch
    assert summarize(history)["epochs"] == len(history)


def test_train_stage_writes_a_self_describing_model_metrics_and_curves(mnist_dir):
    write_params(mnist_dir, params_with(**TINY, threads=1))
    result = train_stage(mnist_dir, "model2")
    assert result.returncode == 0, result.stderr
    assert "model2: test accuracy" in result.stdout and "1 threads" in result.stdout
    metrics = json.loads((mnist_dir / "metrics/train/model2.json").read_text())
    curves = pd.read_csv(mnist_dir / "plots/train/model2.csv")
    assert list(curves.columns) == ["epoch", "train_loss", "train_acc", "test_loss", "test_acc"]
    assert metrics == {"final_test_acc": curves["test_acc"].iloc[-1]}
    card = json.loads((mnist_dir / "models/model2.json").read_text())
    assert card == {"role": "baseline", "label": "model 2"}
    # the checkpoint alone rebuilds the model: architecture from the file, not from params
    model = load_cnn(mnist_dir / "models/model2.pt", torch.device("cpu"))
    assert model[0].out_channels == 4 and model[-1].in_features == 16
    # wall-clock figures go to the git-ignored run log, not to a tracked output
    log = [json.loads(line) for line in (mnist_dir / "logs/runs.jsonl").read_text().splitlines()]
    assert log[-1]["stage"] == "model2" and log[-1]["train_images_per_s"] > 0


def test_sweep_point_that_diverges_still_writes_outputs_and_summary_marks_it(mnist_dir):
    params = params_with(**TINY, **{"sweep.batch_size": [32], "sweep.lr": [1000000.0],
                                    "sweep.extra.batch_size": [64], "sweep.extra.lr": [0.1]})
    write_params(mnist_dir, params)
    for batch_size, lr in (("32", "1000000.0"), ("64", "0.1")):
        run_main("sweep", "--data", "data/mnist", "--batch-size", batch_size, "--lr", lr, cwd=mnist_dir)
    assert json.loads((mnist_dir / "metrics/sweep/32-1000000.0.json").read_text())["diverged"] is True
    run_main("sweep_summary", cwd=mnist_dir)
    table = pd.read_csv(mnist_dir / "plots/sweep_summary/table.csv")
    assert table.set_index("point")["diverged"].to_dict() == {"32-1000000.0": True, "64-0.1": False}
    summary = json.loads((mnist_dir / "metrics/sweep_summary.json").read_text())
    finals = table.set_index("point")["final_test_acc"]
    assert summary == {"best_point": "64-0.1", "best_test_acc": table.set_index("point")["best_test_acc"]["64-0.1"],
                       "diverged": 1,  # every point's number where `dvc exp show` finds it (a diverged one's: null)
                       "final_test_acc": {"32-1000000.0": None if pd.isna(finals["32-1000000.0"]) else finals["32-1000000.0"],
                                          "64-0.1": finals["64-0.1"]}}
    assert "plots/sweep_summary/figures/overlay_test_acc.png" in files_under(mnist_dir)
    # a point's summary that lost its contents is one line naming the file
    (mnist_dir / "metrics/sweep/64-0.1.json").write_text("{}")
    with pytest.raises(StageError, match="metrics/sweep/64-0.1.json: missing 'final_test_acc'"):
        run_main("sweep_summary", cwd=mnist_dir)


def test_the_sweep_has_exactly_the_seeds_ten_points_as_stages(dvc_project):
    names = dvc_project.stage_names()
    sweep = sorted(n for n in names if n.startswith("sweep@") or n.startswith("sweep_extra@"))
    expected = [f"sweep@{b}-{lr}" for b in (32, 64, 128) for lr in (0.1, 0.01, 0.001)] + ["sweep_extra@128-1e-05"]
    assert sweep == sorted(expected)


@pytest.mark.parametrize("args, needle", [
    (["0", "0.1"], "--batch-size must be an integer >= 1, got '0'"),
    (["32", "-0.1"], "--lr must be a number > 0 and at most 1e+06, got '-0.1'"),
    (["32", "fast"], "--lr must be a number > 0 and at most 1e+06, got 'fast'"),
    (["32", "1e308"], "--lr must be a number > 0 and at most 1e+06, got '1e308'"),
])
def test_sweep_bad_point_is_named_and_nothing_is_written(mnist_dir, args, needle):
    write_params(mnist_dir, params_with(**TINY))
    before = files_under(mnist_dir)
    with pytest.raises(StageError, match=re.escape(needle)):
        run_main("sweep", "--data", "data/mnist", "--batch-size", *args[:1], "--lr", *args[1:], cwd=mnist_dir)
    assert files_under(mnist_dir) == before


def test_unknown_model_name_and_corrupt_data(mnist_dir):
    write_params(mnist_dir, params_with(**TINY))
    with pytest.raises(StageError, match=re.escape("'train.models' has no model 'model3' (it has: model1, model2)")):
        train_main(mnist_dir, "model3")
    (mnist_dir / "data/mnist/test.pt").write_bytes(b"not a torch file")
    with pytest.raises(StageError, match="data/mnist/test.pt: content differs from the sha256 that "
                                         "data/mnist/SHA256SUMS records .*dvc repro -f fetch_mnist"):
        train_main(mnist_dir, "model1")
    assert not (mnist_dir / "models").exists()


@pytest.mark.parametrize("labels, needle", [
    (torch.zeros(0, dtype=torch.int64), "data/mnist/train.pt: holds no images"),
    (torch.full((600,), 42), "data/mnist/train.pt: label 42 is not a digit 0-9"),
])
def test_a_split_without_images_or_with_a_bad_label_is_refused(mnist_dir, labels, needle):
    from stages.lib.data import save_split

    write_params(mnist_dir, params_with(**TINY))
    save_split(mnist_dir / "data/mnist/train.pt", torch.zeros(len(labels), 28, 28, dtype=torch.uint8), labels)
    with pytest.raises(StageError, match=needle):
        train_main(mnist_dir, "model1")
