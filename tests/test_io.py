"""Outputs are committed together or not at all, and every failure is one line."""
import errno
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stages.lib import cli, errors
from stages.lib.io import staged_outputs
from tests.conftest import (ROOT, assert_clean_failure, files_under, params_with, run_stage, write_idx_dir,
                            write_params)


def test_staged_outputs_leave_nothing_behind_on_failure(tmp_path):
    (tmp_path / "old.txt").write_text("previous run")
    with pytest.raises(RuntimeError):
        with staged_outputs() as stage:
            stage(tmp_path / "old.txt").write_text("new")
            (stage(tmp_path / "dir") / "").mkdir()
            raise RuntimeError("failed half way")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.txt"]
    assert (tmp_path / "old.txt").read_text() == "previous run"
    with pytest.raises(RuntimeError):  # nor the folders it made for outputs that never came
        with staged_outputs() as stage:
            stage(tmp_path / "plots/new/table.csv").write_text("half")
            raise RuntimeError("failed half way")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.txt"]
    with staged_outputs() as stage:
        stage(tmp_path / "old.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.txt"]
    assert (tmp_path / "old.txt").read_text() == "new"


def test_staged_torch_files_are_byte_identical_across_runs(tmp_path):
    import torch

    written = []
    for _ in range(2):
        with staged_outputs() as stage:
            torch.save({"w": torch.arange(6.0)}, stage(tmp_path / "model.pt"))
        written.append((tmp_path / "model.pt").read_bytes())
    assert written[0] == written[1]


def test_a_failed_rename_puts_back_what_was_already_replaced(tmp_path, monkeypatch):
    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / name).write_text(f"old {name}")
    real_replace = os.replace

    def failing_replace(source, target):
        if str(target).endswith("c.txt") and ".staging-" in str(source) and ".previous-" not in str(source):
            raise OSError(28, "No space left on device", str(target))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(errors.StageError, match=r"c\.txt: could not be written \(No space left on device\)"):
        with staged_outputs() as stage:
            for name in ("a.txt", "b.txt", "c.txt"):
                stage(tmp_path / name).write_text(f"new {name}")
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
        "a.txt": "old a.txt", "b.txt": "old b.txt", "c.txt": "old c.txt"}


def test_staging_folders_of_killed_runs_are_cleaned_at_the_next_start(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".staging-{dead.stdout.strip()}"
    stale.mkdir()
    (stale / "half-written.json").write_text("{")
    with staged_outputs() as stage:
        stage(tmp_path / "out.txt").write_text("done")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


@pytest.mark.parametrize("raised, status, line", [
    (errors.StageError("params.yaml: 'x' is bad"), 2, "error: params.yaml: 'x' is bad"),
    (OSError(28, "No space left on device", "metrics/x.json"), 2, "error: metrics/x.json: No space left on device"),
    (PermissionError(13, "Permission denied", "plots/x"), 2, "error: plots/x: Permission denied"),
    (KeyboardInterrupt(), 130, "error: interrupted; no outputs were written"),
])
def test_every_failure_is_one_line_and_a_status(capsys, raised, status, line):
    def main():
        raise raised

    with pytest.raises(SystemExit) as exit_:
        cli.run(main)
    assert exit_.value.code == status
    assert capsys.readouterr().err == line + "\n"


def test_ctrl_c_in_a_real_stage_is_one_line_and_130(tmp_path):
    import signal
    import time

    write_params(tmp_path, params_with(**{"xor.epochs": 100_000, "xor.gif_every": 100}))  # long enough to interrupt
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "stages.xor"], cwd=tmp_path, env=env,
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    time.sleep(4)  # past the imports, into training
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr.strip().splitlines()[-1] == "error: interrupted; no outputs were written"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_a_short_torch_write_is_one_line_naming_the_output(tmp_path, monkeypatch):
    import torch

    from stages.lib.errors import StageError
    from stages.lib.io import save_tensors

    def short_write(obj, path):
        Path(path).write_bytes(b"PK\x03\x04 half")
        raise RuntimeError("[enforce fail at inline_container.cc:671] . unexpected pos 5568 vs 5488")

    monkeypatch.setattr(torch, "save", short_write)
    (tmp_path / "model.pt").write_bytes(b"previous")
    with pytest.raises(StageError, match=r"model\.pt: could not be written in full .*unexpected pos"):
        with staged_outputs() as stage:
            save_tensors({"w": 1}, stage(tmp_path / "model.pt"))
    assert (tmp_path / "model.pt").read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_a_file_size_limit_fails_a_real_stage_with_one_line_and_changes_nothing(mnist_dir):
    """The limit a full disk imposes, for real: RLIMIT_FSIZE in the stage's process (Python ignores
    SIGXFSZ, so a write past it fails with EFBIG or comes up short)."""
    import resource

    write_params(mnist_dir, params_with(**{"model.channels": [4, 8], "model.hidden": 16, "train.epochs": 1}))
    before = files_under(mnist_dir)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "stages.train", "model1", "--data", "data/mnist", "--model", "models/model1.pt"],
        cwd=mnist_dir, env=env, capture_output=True, text=True, timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY)))
    assert_clean_failure(result, "models/model1.pt: could not be written in full")
    assert result.returncode == 2
    after = [f for f in files_under(mnist_dir) if not f.startswith("logs/")]  # the git-ignored run log may grow
    assert after == before  # no checkpoint, metrics, curves or empty folder left


def test_a_run_log_that_cannot_be_written_is_a_warning_after_the_outputs(tmp_path, monkeypatch, capsys):
    from stages.lib import io

    (tmp_path / "logs").write_text("a file where the log folder should be")
    monkeypatch.setattr(io, "RUN_LOG", str(tmp_path / "logs/runs.jsonl"))
    io.log_run("train", seconds=1.0)
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and "runs.jsonl: the run's figures were not logged" in err


@pytest.mark.parametrize("module, absent", [
    ("stages.report", "torch"),  # it reads tables and figures: no tensor file (io imports torch where it loads one)
    ("stages.attack", "torchvision"),  # imported where an image grid is drawn
    ("stages.robustness", "torchattacks"),  # imported where AutoAttack runs
])
def test_a_stage_starts_without_the_packages_it_needs_only_later(module, absent):
    """Start-up counts in every stage of every run (several seconds a package on a GPU machine)."""
    code = f"import sys, {module}; print({absent!r} in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# --- every number read is finite ------------------------------------------------------------------

@pytest.mark.parametrize("text, key", [
    ('{"final_test_acc": NaN}', "final_test_acc"),
    ('{"final_test_acc": 0.99, "best": Infinity}', "best"),
    ('{"epochs": [1, 2, -Infinity]}', "epochs[2]"),
    ('{"untargeted": {"model2_accuracy": 1e999}}', "untargeted.model2_accuracy"),
])
def test_a_json_number_that_is_nan_or_infinite_is_refused_naming_the_key(tmp_path, text, key):
    from stages.lib.io import NUMBER, read_json

    (tmp_path / "m.json").write_text(text)
    with pytest.raises(errors.StageError, match=rf"m\.json: '{re.escape(key)}' is not a finite number"):
        read_json(tmp_path / "m.json", {"final_test_acc": NUMBER} if "final" in text else ())


@pytest.mark.parametrize("cell", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999"])
def test_a_csv_number_that_is_nan_or_infinite_is_refused_naming_column_and_line(tmp_path, cell):
    from stages.lib.io import read_csv

    (tmp_path / "t.csv").write_text(f"epoch,test_acc,note\n1,0.9,a\n2,{cell},b\n")
    with pytest.raises(errors.StageError, match=r"t\.csv: column 'test_acc' line 3: \S+ is not a finite number"):
        read_csv(tmp_path / "t.csv", numeric=("epoch",))
    (tmp_path / "t.csv").write_text("epoch,test_acc,note\n1,0.9,a\n2,,b\n")  # an empty cell: no value, allowed
    assert read_csv(tmp_path / "t.csv", numeric=("epoch", "test_acc"))["test_acc"].isna().tolist() == [False, True]


def test_the_sweep_summary_refuses_an_infinite_loss_with_one_line(tmp_path):
    write_params(tmp_path, params_with(**{"sweep.batch_size": [64], "sweep.lr": [0.1], "sweep.extra.batch_size": [128],
                                          "sweep.extra.lr": [1e-05]}))
    (tmp_path / "plots/sweep").mkdir(parents=True)
    (tmp_path / "metrics/sweep").mkdir(parents=True)
    for point, loss in (("64-0.1", "inf"), ("128-1e-05", "0.1")):
        (tmp_path / f"plots/sweep/{point}.csv").write_text(
            f"epoch,train_loss,train_acc,test_loss,test_acc\n1,{loss},0.9,0.1,0.9\n")
        (tmp_path / f"metrics/sweep/{point}.json").write_text(
            '{"final_test_acc": 0.9, "best_test_acc": 0.9, "best_epoch": 1, "min_train_loss": 0.1, "epochs": 1, '
            '"diverged": false}')
    result = run_stage("sweep_summary", cwd=tmp_path)
    assert_clean_failure(result, "plots/sweep/64-0.1.csv: column 'train_loss' line 2: inf is not a finite number")
    assert not (tmp_path / "plots/sweep_summary").exists()


def test_every_committed_table_and_metrics_file_passes_the_readers():
    from stages.lib.io import read_csv, read_json

    files = sorted((ROOT / "metrics").rglob("*.json")) + sorted((ROOT / "plots").rglob("*.json"))
    assert len(files) > 20
    for path in files:
        read_json(path)
    for path in sorted((ROOT / "plots").rglob("*.csv")):
        read_csv(path)


# --- a write that fails names the output's final path ---------------------------------------------

def _write_json(stage):
    from stages.lib.io import write_json

    write_json(stage("metrics/m.json"), {"a": 1})


def _write_csv(stage):
    from stages.lib.io import write_csv

    write_csv(stage("plots/t.csv"), [{"a": 1}])


def _write_png(stage):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = stage("plots/figures")
    figures.mkdir()
    figure = plt.figure()
    try:
        figure.savefig(figures / "a.png")
    finally:
        plt.close(figure)


def _write_html(stage):
    stage("report/index.html").write_text("<html></html>")


def _fail_writes(monkeypatch, number):
    """Every write of a file's contents fails as a full disk (or a size limit) fails it: an OSError that
    names no file."""
    import matplotlib.figure
    import pandas as pd

    def fail(*args, **kwargs):
        raise OSError(number, os.strerror(number))

    monkeypatch.setattr(Path, "write_text", fail)
    monkeypatch.setattr(pd.DataFrame, "to_csv", fail)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", fail)


@pytest.mark.parametrize("number", [errno.ENOSPC, errno.EFBIG])
@pytest.mark.parametrize("write, output", [(_write_json, "metrics/m.json"), (_write_csv, "plots/t.csv"),
                                           (_write_png, "plots/figures"), (_write_html, "report/index.html")])
def test_a_failed_write_names_the_output_for_each_kind(tmp_path, monkeypatch, write, output, number):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/earlier.json").write_text("{}")
    _fail_writes(monkeypatch, number)
    with pytest.raises(errors.StageError) as raised:
        with staged_outputs() as stage:
            write(stage)
    assert str(raised.value) == f"{output}: could not be written ({os.strerror(number)}); no output was changed"
    assert files_under(tmp_path) == ["metrics/earlier.json"]


def test_a_real_file_size_limit_names_the_json_output(tmp_path):
    import resource

    code = ("from stages.lib import cli\nfrom stages.lib.io import staged_outputs, write_json\n"
            "def main():\n    with staged_outputs() as stage:\n"
            "        write_json(stage('metrics/big.json'), list(range(10000)))\ncli.run(main)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)))
    assert result.stderr == "error: metrics/big.json: could not be written (File too large); no output was changed\n"
    assert files_under(tmp_path) == []


def test_a_short_write_in_a_staged_folder_names_the_file_in_the_final_folder(tmp_path, monkeypatch):
    import torch

    from stages import fetch_mnist

    def short_write(obj, path):
        Path(path).write_bytes(b"PK\x03\x04 half")
        raise RuntimeError("[enforce fail at inline_container.cc:671] . unexpected pos 5568 vs 5488")

    write_idx_dir(tmp_path / "idx")
    write_params(tmp_path, params_with(**{"data.source": "idx"}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch, "save", short_write)
    with pytest.raises(errors.StageError, match=r"^data/mnist/train\.pt: could not be written in full"):
        fetch_mnist.main(["--out", "data/mnist"])
    assert files_under(tmp_path / "data") == []


# --- staging that a killed run left -----------------------------------------------------------------

def a_dead_pid():
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(dead.stdout)


def test_staging_of_a_killed_run_anywhere_in_the_output_folders_is_removed_by_the_next_stage(tmp_path, monkeypatch):
    """The report killed mid-write, then restored from DVC's run cache: its staging folder stays until the
    next run of any stage."""
    dead, alive = a_dead_pid(), os.getppid()
    left = [f"report/.staging-{dead}/index.html", f"plots/robustness/images/.staging-{dead}/model1.csv",
            f"data/.staging-{dead}/mnist/train.pt"]
    running = f"plots/xor/.staging-{alive}/history.csv"  # another stage, still running
    for name in (*left, running):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("half")
    monkeypatch.chdir(tmp_path)
    with staged_outputs() as stage:
        stage("metrics/xor.json").write_text("{}")
    assert files_under(tmp_path) == ["metrics/xor.json", running]


def test_staging_folders_are_ignored_by_git():
    for path in ("report/.staging-123/index.html", "plots/xor/.staging-4/figures/a.png", ".staging-5/x.pt"):
        result = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT)
        assert result.returncode == 0, path


def test_every_output_in_dvc_yaml_lies_in_the_folders_cleaned_of_stale_staging():
    import yaml

    from stages.lib.io import OUTPUT_FOLDERS

    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    paths = pipeline["vars"][0]["paths"]
    outputs = [next(iter(out)) if isinstance(out, dict) else out for stage in pipeline["stages"].values()
               for kind in ("outs", "metrics", "plots") for out in stage.get("do", stage).get(kind, [])]
    for out in outputs:
        top = re.sub(r"\$\{paths\.(\w+)\}", lambda m: paths[m.group(1)], out).split("/")[0]
        assert top in OUTPUT_FOLDERS, out
