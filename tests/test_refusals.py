"""Nothing is lost, whatever a user hands a stage: an output path that is a folder (or, for a folder
output, a file), or one of the stage's own inputs; a checkpoint with NaN weights; a metrics file whose
number became text; params nested past any schema; SIGTERM. Each is one line, a non-zero status, and
every file left as it was."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from stages.lib.errors import StageError
from stages.lib.io import NUMBER, read_csv, read_json, staged_outputs
from tests.conftest import (ROOT, assert_clean_failure, files_under, params_with, run_main,
                            run_stage, write_idx_dir, write_params)

TINY = {"model.channels": [4, 8], "model.hidden": 16, "train.epochs": 1, "attack.max_steps": 50,
        "attack.step_size": 0.05, "attack.n_images": 8, "attack.gallery.untargeted": [], "attack.gallery.targeted": [],
        "retrain.share": 0.02}


def snapshot(directory):
    return {name: (directory / name).read_bytes() for name in files_under(directory) if not name.startswith("logs/")}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny MNIST folder with model1 and model2 trained on it."""
    from tests.conftest import make_mnist_dir

    path = make_mnist_dir(tmp_path_factory.mktemp("trained"))
    write_params(path, params_with(**TINY))
    for name in ("model1", "model2"):
        run_main("train", name, "--data", "data/mnist", "--model", f"models/{name}.pt", cwd=path)
    return path


def test_a_file_output_never_replaces_a_folder(trained):
    before = snapshot(trained)
    result = run_stage("train", "model1", "--data", "data/mnist", "--model", "models", cwd=trained)
    assert_clean_failure(result, "models: is an existing folder, and this output is a file")
    assert result.returncode == 2 and snapshot(trained) == before


def test_an_output_never_replaces_one_of_the_stages_inputs(trained):
    before = snapshot(trained)
    for args, words in (
            (("--data", "data/mnist", "--model", "data/mnist/test.pt"), "data/mnist/test.pt: is one of this stage's inputs"),
            (("--data", "data/mnist", "--model", "data"), "data: holds one of this stage's inputs (data/mnist/"),
            (("--data", "data/mnist", "--model", "data/mnist"), "data/mnist: holds one of this stage's inputs")):
        result = run_stage("train", "model2", *args, cwd=trained)
        assert_clean_failure(result, words)
        assert result.returncode == 2 and snapshot(trained) == before, args
    result = run_stage("retrain", "--data", "data/mnist", "--source", "models/model1.pt", "--model", "models/model1.pt",
                       cwd=trained)
    assert_clean_failure(result, "models/model1.pt: is one of this stage's inputs (models/model1.pt)")
    assert snapshot(trained) == before


def test_a_folder_output_never_replaces_a_file(tmp_path):
    write_idx_dir(tmp_path / "idx")
    write_params(tmp_path, params_with(**{"data.source": "idx"}))
    (tmp_path / "mnist").write_text("a file the user keeps")
    result = run_stage("fetch_mnist", "--out", "mnist", cwd=tmp_path)
    assert_clean_failure(result, "mnist: is an existing file, and this output is a folder")
    assert (tmp_path / "mnist").read_text() == "a file the user keeps"


# --- an output replaces only an output of the same kind ------------------------------------------

def _checkpoint(path):
    from stages.lib.models import CnnSpec, mnist_cnn, save_cnn

    spec = CnnSpec(channels=[2], kernel_size=3, hidden=4)
    save_cnn(mnist_cnn(spec), spec, path)


def _checkpoints(path):
    path.mkdir()
    for name in ("m1.pt", "m2.pt"):
        _checkpoint(path / name)


def _prepared_data(path):
    from stages.lib.data import save_split, split_path
    from tests.conftest import synthetic_digits

    path.mkdir()
    for split in ("train", "test"):
        save_split(split_path(path, split), *synthetic_digits(10))


def _figures(path):
    path.mkdir()
    for name in ("a.png", "b.gif"):
        (path / name).write_bytes(b"GIF89a")


def _documents(path):
    path.mkdir()
    for name in ("a.md", "b.png"):
        (path / name).write_text("a page")


def _text(path):
    path.write_text("a text")


@pytest.mark.parametrize("output, there, written, kind", [
    ("models/m1.pt", _checkpoint, _checkpoint, "a checkpoint"),
    ("models/m1.ckpt", _checkpoint, _checkpoint, "a checkpoint"),
    ("data/mnist", _prepared_data, _prepared_data, "a checksummed folder"),
    ("plots/figures", _figures, _figures, "a folder of figures"),
    ("plots/figures", Path.mkdir, _figures, "a folder of figures"),  # over an empty folder
    ("plots/t.csv", _text, _text, "a .csv file"),
])
def test_an_output_replaces_an_output_of_the_same_kind(tmp_path, output, there, written, kind):
    from stages.lib.io import output_kind

    (tmp_path / output).parent.mkdir(parents=True, exist_ok=True)
    there(tmp_path / output)
    with staged_outputs() as stage:
        written(stage(tmp_path / output))
    assert output_kind(tmp_path / output) == kind and not list(tmp_path.rglob(".staging-*"))


@pytest.mark.parametrize("output, there, written, words", [
    ("dvc.lock", _text, _checkpoint, "dvc.lock: holds a file that no stage writes, and this output is a checkpoint"),
    ("params.yaml", _text, _text, "params.yaml: holds a file that no stage writes"),
    ("models", _checkpoints, _prepared_data, "models: holds other files (m1.pt, m2.pt), and this output is a checksummed folder"),
    ("docs", _documents, _figures, "docs: holds other files (a.md, b.png), and this output is a folder of figures"),
    ("data/mnist", _figures, _prepared_data, "data/mnist: holds a folder of figures, and this output is a checksummed"),
    ("metrics/m1.json", _text, _checkpoint, "metrics/m1.json: holds a .json file, and this output is a checkpoint"),
    ("split.pt", lambda path: torch.save({"images": torch.zeros(1)}, path), _checkpoint,
     "split.pt: holds a file of tensors, and this output is a checkpoint"),
])
def test_an_output_never_replaces_anything_else(tmp_path, output, there, written, words):
    (tmp_path / output).parent.mkdir(parents=True, exist_ok=True)
    there(tmp_path / output)
    before = snapshot(tmp_path)
    with pytest.raises(StageError, match=re.escape(words) + ".*name another path \\(no output was changed\\)$"):
        with staged_outputs() as stage:
            written(stage(tmp_path / output))
    assert snapshot(tmp_path) == before and set(files_under(tmp_path)) == set(before)


def test_a_path_ending_in_a_slash_is_a_folder_and_a_parent_must_be_a_folder(tmp_path):
    _checkpoint(tmp_path / "model1.pt")
    before = snapshot(tmp_path)
    with pytest.raises(StageError, match=r"model1\.pt/: names a folder \(it ends in '/'\), and this output is a file"):
        with staged_outputs() as stage:
            _checkpoint(stage(f"{tmp_path}/model1.pt/"))
    with pytest.raises(StageError, match=r"model1\.pt/m\.pt: \S*model1\.pt is a file, not a folder; name a path in"):
        with staged_outputs() as stage:
            _checkpoint(stage(tmp_path / "model1.pt/m.pt"))
    assert snapshot(tmp_path) == before
    with staged_outputs() as stage:  # a folder output may be named with its slash
        _figures(stage(f"{tmp_path}/figures/"))
    assert sorted(files_under(tmp_path)) == ["figures/a.png", "figures/b.gif", "model1.pt"]


def test_fetch_mnist_never_replaces_a_folder_of_checkpoints(tmp_path):
    """Before: exit 0, and models/ held train.pt and test.pt: its checkpoints were deleted."""
    write_idx_dir(tmp_path / "idx")
    write_params(tmp_path, params_with(**{"data.source": "idx"}))
    _checkpoints(tmp_path / "models")
    before = snapshot(tmp_path)
    result = run_stage("fetch_mnist", "--out", "models", cwd=tmp_path)
    assert_clean_failure(result, "models: holds other files (m1.pt, m2.pt), and this output is a checksummed folder")
    assert result.returncode == 2 and snapshot(tmp_path) == before


def test_train_never_writes_a_checkpoint_over_dvc_lock(trained):
    """Before: exit 0, and dvc.lock held a checkpoint."""
    (trained / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    before = snapshot(trained)
    result = run_stage("train", "model1", "--data", "data/mnist", "--model", "dvc.lock", cwd=trained)
    assert_clean_failure(result, "dvc.lock: holds a file that no stage writes, and this output is a checkpoint")
    assert result.returncode == 2 and snapshot(trained) == before
    (trained / "dvc.lock").unlink()


def test_a_folder_that_cannot_be_written_is_named_as_the_user_wrote_it(tmp_path):
    if os.geteuid() == 0:  # root writes anywhere: a read-only folder is simulated by a file in its place
        (tmp_path / "adversarial").write_text("not a folder")
        words = r"adversarial/untargeted\.pt: \S*adversarial is a file, not a folder"
    else:
        (tmp_path / "adversarial").mkdir(mode=0o500)
        words = r"adversarial/untargeted\.pt: cannot be written"
    with pytest.raises(StageError, match=r"^.*" + words) as raised:
        with staged_outputs() as stage:
            stage(tmp_path / "adversarial/untargeted.pt").write_text("x")
    assert ".staging-" not in str(raised.value)


def test_a_checkpoint_with_nan_weights_is_refused_by_every_stage_that_loads_one(trained):
    from stages.lib.models import CnnSpec, load_cnn, mnist_cnn, save_cnn

    spec = CnnSpec(channels=[4, 8], kernel_size=5, hidden=16)
    model = mnist_cnn(spec)
    with torch.no_grad():
        model[3].weight[0, 0, 0, 0] = float("nan")
    save_cnn(model, spec, trained / "models/broken.pt")
    with pytest.raises(StageError, match=r"broken\.pt: parameter '3\.weight' holds NaN or infinite values"):
        load_cnn(trained / "models/broken.pt", torch.device("cpu"))
    before = snapshot(trained)
    result = run_stage("attack", "untargeted", "--data", "data/mnist", "--model", "models/broken.pt", cwd=trained)
    assert_clean_failure(result, "models/broken.pt: parameter '3.weight' holds NaN")
    assert snapshot(trained) == before
    (trained / "models/broken.pt").unlink()


def test_a_number_turned_into_text_is_refused_where_it_is_read(tmp_path):
    (tmp_path / "m.json").write_text('{"final_test_acc": "0.99", "diverged": false}')
    with pytest.raises(StageError, match=r"m\.json: 'final_test_acc' must be a number, got '0\.99'"):
        read_json(tmp_path / "m.json", {"final_test_acc": NUMBER})
    (tmp_path / "m.json").write_text('{"final_test_acc": true}')
    with pytest.raises(StageError, match="must be a number, got True"):
        read_json(tmp_path / "m.json", {"final_test_acc": NUMBER})
    (tmp_path / "t.csv").write_text("epoch,test_acc\n1,0.9\n2,oops\n")
    with pytest.raises(StageError, match=r"t\.csv: column 'test_acc' holds text where numbers belong"):
        read_csv(tmp_path / "t.csv", numeric=("epoch", "test_acc"))
    assert read_csv(tmp_path / "t.csv", numeric=("epoch",))["epoch"].tolist() == [1, 2]


def test_the_sweep_summary_refuses_a_metric_that_became_text(tmp_path):
    write_params(tmp_path, params_with(**{"sweep.batch_size": [64], "sweep.lr": [0.1], "sweep.extra.batch_size": [128],
                                          "sweep.extra.lr": [1e-05]}))
    (tmp_path / "plots/sweep").mkdir(parents=True)
    (tmp_path / "metrics/sweep").mkdir(parents=True)
    for point, final in (("64-0.1", '"0.9"'), ("128-1e-05", "0.5")):
        (tmp_path / f"plots/sweep/{point}.csv").write_text(
            "epoch,train_loss,train_acc,test_loss,test_acc\n1,0.1,0.9,0.1,0.9\n")
        (tmp_path / f"metrics/sweep/{point}.json").write_text(
            f'{{"final_test_acc": {final}, "best_test_acc": 0.9, "best_epoch": 1, "min_train_loss": 0.1, '
            '"epochs": 1, "diverged": false}')
    result = run_stage("sweep_summary", cwd=tmp_path)
    assert_clean_failure(result, "metrics/sweep/64-0.1.json: 'final_test_acc' must be a number, got '0.9'")
    assert not (tmp_path / "plots/sweep_summary").exists()


@pytest.mark.parametrize("value", ["[" * 3000 + "1" + "]" * 3000, "{a: " * 3000 + "1" + "}" * 3000,
                                   "[" * 600 + "1" + "]" * 600])
def test_params_nested_past_any_schema_are_one_line(tmp_path, value):
    path = write_params(tmp_path, params_with())
    path.write_text(path.read_text().replace("seed: 0", f"seed: {value}", 1))
    result = run_stage("check_params", "--out", "ok.txt", cwd=tmp_path)
    assert_clean_failure(result)
    assert len(result.stderr) < 400 and not (tmp_path / "ok.txt").exists()


def catches(pid, signum):
    """Whether process pid has a handler of its own for signal signum (Linux: SigCgt in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def test_sigterm_is_one_line_and_143_with_nothing_written(tmp_path):
    write_params(tmp_path, params_with(**{"xor.epochs": 100_000, "xor.gif_every": 100}))  # long enough
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "stages.xor"], cwd=tmp_path, env=env,
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 120
    while not catches(process.pid, signal.SIGTERM) and time.monotonic() < deadline:  # past the imports
        time.sleep(0.2)
    time.sleep(1)  # into training
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143
    assert stderr.strip().splitlines()[-1] == "error: terminated (SIGTERM); no outputs were written"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_make_mnist_without_a_folder_prints_its_usage_on_stderr():
    result = subprocess.run(["make", "-s", "-C", str(ROOT), "mnist"], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "MAKEFLAGS": ""})
    assert result.returncode != 0
    assert "usage: make mnist FROM=" in result.stderr and "usage" not in result.stdout
