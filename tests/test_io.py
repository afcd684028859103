"""Outputs are committed together or not at all, and every failure is one line."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stages.lib import cli, errors
from stages.lib.io import staged_outputs
from tests.conftest import ROOT, assert_clean_failure, files_under, params_with, write_params


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
    with pytest.raises(OSError):
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
