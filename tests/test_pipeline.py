"""End to end: the real `dvc repro` of the whole pipeline in a temporary copy, on a tiny profile."""
import json

import pytest
import yaml

from stages.lib.io import staged_outputs
from tests.conftest import params_with

TINY_PROFILE = {
    "data.source": "sample",
    "loss_surfaces.step": 1.0,
    "xor.epochs": 60, "xor.n_seeds": 3, "xor.snapshot_epochs": [0, 60], "xor.gif_every": 30,
    "model.channels": [4, 8], "model.hidden": 16,
    "train.epochs": 1, "sweep.epochs": 1,
    "sweep.batch_size": [64], "sweep.lr": [0.1], "sweep.extra.batch_size": [128], "sweep.extra.lr": [1e-05],
    "attack.n_images": 16, "attack.max_steps": 50, "attack.step_size": 0.05,
}


def test_dvc_repro_of_the_whole_pipeline(dvc_project):
    params = params_with(**TINY_PROFILE)
    (dvc_project.path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc_project.dvc("repro")
    root = dvc_project.path

    def metrics(name):
        return json.loads((root / "metrics" / name).read_text())

    assert metrics("data.json")["source"] == "sample" and metrics("data.json")["n_train"] == 4000
    assert metrics("loss_surfaces.json")["grid_points"] == 11 * 11
    assert metrics("xor.json")["linear"]["accuracy"] <= 0.75
    assert metrics("train/model1.json")["epochs"] == 1 and metrics("train/model2.json")["seed"] == 2
    assert set(p.name for p in (root / "metrics/sweep").iterdir()) == {"64-0.1.json", "128-1e-05.json"}
    assert metrics("sweep_summary.json")["points"] == 2
    for kind in ("untargeted", "targeted"):
        assert metrics(f"attack_{kind}.json")["images_attacked"] == 16
    assert metrics("transfer.json")["untargeted"]["model1_accuracy"] == 0.0
    for figure in ("loss_surfaces/figures/all.png", "xor/figures/nonlinear_boundaries.gif",
                   "sweep_summary/figures/64-0.1.png", "attack_targeted/figures/gallery.png",
                   "transfer/figures/confusion_untargeted.png"):
        assert (root / "plots" / figure).stat().st_size > 1000, figure

    # DVC's own tools read what the stages wrote
    shown = json.loads(dvc_project.dvc("metrics", "show", "--json").stdout)
    assert shown and "error" not in json.dumps(shown)[:200]
    plots = json.loads(dvc_project.dvc("plots", "show", "--json").stdout)
    assert not plots.get("errors"), plots.get("errors")
    assert "sweep_test_accuracy" in plots["data"]

    # a second repro is a no-op; a new grid value reruns only what it changes
    assert "Data and pipelines are up to date" in dvc_project.dvc("repro").stdout
    params["sweep"]["lr"] = [0.1, 0.05]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = dvc_project.dvc("status").stdout
    assert "sweep@64-0.05" in status and "sweep_summary" in status
    assert "sweep@64-0.1:" not in status and "train@model1" not in status


def test_staged_outputs_leave_nothing_behind_on_failure(tmp_path):
    (tmp_path / "old.txt").write_text("previous run")
    with pytest.raises(RuntimeError):
        with staged_outputs() as stage:
            stage(tmp_path / "old.txt").write_text("new")
            (stage(tmp_path / "dir") / "").mkdir()
            raise RuntimeError("failed half way")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.txt"]
    assert (tmp_path / "old.txt").read_text() == "previous run"
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
