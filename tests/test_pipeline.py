"""End to end: the real `dvc repro` of the whole pipeline in a temporary copy, on a tiny profile."""
import json
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from tests.conftest import (
    DvcProject,
    assert_clean_failure,
    assert_every_chart_drew,
    assert_no_network_references,
    make_dvc_project,
    params_with,
)

TINY_PROFILE = {
    "data.source": "sample",
    "loss_surfaces.step": 1.0,
    "xor.epochs": 60, "xor.n_seeds": 3, "xor.snapshot_epochs": [0, 60], "xor.gif_every": 30,
    "model.channels": [4, 8], "model.hidden": 16,
    "train.epochs": 2, "sweep.epochs": 2,  # two points on every curve: a chart that drew data spans two x
    "sweep.batch_size": [64], "sweep.lr": [0.1], "sweep.extra.batch_size": [128], "sweep.extra.lr": [1e-05],
    "attack.n_images": 16, "attack.max_steps": 50, "attack.step_size": 0.05,
    "retrain.share": 0.02, "adversarial_training.epochs": 2, "adversarial_training.epsilon_ramp_epochs": 1,
    "adversarial_training.guard.images": 100,
    "trades.epochs": 2, "trades.epsilon_ramp_epochs": 1, "trades.steps": 2, "trades.guard.images": 100,
    "robustness.models": {name: {"n_images": 16}
                          for name in ("model1", "model2", "retrain", "adversarial_training", "trades")},
    "robustness.epsilon": [0.0, 0.15, 0.3], "robustness.headline": [0.15, 0.3],
    "robustness.autoattack.epsilon": [], "robustness.checks.epsilon": 0.3, "robustness.checks.steps": [2, 4],
    "robustness.pgd.steps": 5, "robustness.pgd.restarts": 2,
    "robustness.transfer.margins": [0.0, 2.0], "robustness.transfer.n_images": 16,
}


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    """A temporary copy of the pipeline after `dvc repro` of the tiny profile. The first test commits it
    and reruns it with identical outputs, and puts params.yaml back; the others only read it."""
    project = make_dvc_project(tmp_path_factory.mktemp("pipeline"))
    (project.path / "params.yaml").write_text(yaml.safe_dump(params_with(**TINY_PROFILE), sort_keys=False))
    project.dvc("repro")
    return project


def test_dvc_repro_of_the_whole_pipeline_and_a_rerun_that_leaves_git_clean(reproduced):
    dvc_project, root = reproduced, reproduced.path
    params = params_with(**TINY_PROFILE)

    def metrics(name):
        return json.loads((root / "metrics" / name).read_text())

    assert metrics("data.json") == {"source": "sample", "official": False, "n_train": 4000, "n_test": 1000}
    assert len(pd.read_csv(root / "plots/loss_surfaces/grid.csv")) == (5 + 4) * 11 * 11
    assert metrics("xor.json")["linear"]["seeds_solved_fraction"] == 0.0
    assert len(pd.read_csv(root / "plots/train/model1.csv")) == 2
    assert set(p.name for p in (root / "metrics/sweep").iterdir()) == {"64-0.1.json", "128-1e-05.json"}
    assert set(pd.read_csv(root / "plots/sweep_summary/table.csv")["point"]) == {"64-0.1", "128-1e-05"}
    for kind in ("untargeted", "targeted"):
        assert len(pd.read_csv(root / f"plots/attack_{kind}/images.csv")) == 16
    sets = pd.read_csv(root / "plots/transfer/sets.csv")
    assert sets["model1_accuracy"].tolist() == [0.0, 0.0]
    assert {"model2_target_rate", "retrain_target_rate", "adversarial_training_target_rate"} <= set(sets.columns)
    assert set(metrics("transfer.json")["targeted"]) == {"model2_accuracy", "model2_target_rate"}
    assert metrics("train/retrain.json")["adversarial_images"] > 0
    assert len(pd.read_csv(root / "plots/train/adversarial_training.csv")["guard_pgd_acc"]) == 2
    for name in ("model1", "model2", "retrain", "adversarial_training", "trades"):
        assert set(metrics(f"robustness/{name}.json")) == {"clean", "robust_0.15", "robust_0.3"}
    for figure in ("loss_surfaces/figures/seed_target.png", "xor/figures/nonlinear_boundaries.gif",
                   "sweep_summary/figures/64-0.1.png", "attack_targeted/figures/gallery.png",
                   "transfer/figures/confusion_untargeted.png"):
        assert (root / "plots" / figure).stat().st_size > 1000, figure

    # DVC's own tools read what the stages wrote
    shown = json.loads(dvc_project.dvc("metrics", "show", "--json").stdout)
    assert "error" not in json.dumps(shown)
    # headline numbers only (each sweep point's accuracy among them): the curves and per-item tables are plots
    assert metric_count(shown) <= 46  # 40 before defence 3 (TRADES) added its training and robustness numbers
    plots = json.loads(dvc_project.dvc("plots", "show", "--json").stdout)
    assert not plots.get("errors"), plots.get("errors")
    assert "sweep_test_accuracy" in plots["data"]

    # the lock holds exactly the stages of dvc.yaml, foreach and matrix expanded
    assert set(yaml.safe_load((root / "dvc.lock").read_text())["stages"]) == set(dvc_project.stage_names())

    # a second repro is a no-op; a forced rerun of a stage that attacks and trains (retrain) with the same
    # params leaves every committed byte as it was
    assert "Data and pipelines are up to date" in dvc_project.dvc("repro").stdout
    dvc_project.run("git", "add", "-A")
    dvc_project.run("git", "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-qm", "run 1")
    checkpoint = (root / "models/retrain.pt").read_bytes()
    dvc_project.dvc("repro", "-f", "-s", "retrain")
    assert dvc_project.run("git", "status", "--porcelain").stdout == ""
    assert (root / "models/retrain.pt").read_bytes() == checkpoint
    assert (root / "logs/runs.jsonl").is_file()  # the wall-clock figures went to the ignored run log

    # a typo in a key no stage tracks stops `dvc repro` with one line before any stage runs
    typo = params_with(**TINY_PROFILE)
    typo["train"]["lerning_rate"] = 0.5
    (root / "params.yaml").write_text(yaml.safe_dump(typo, sort_keys=False))
    failed = dvc_project.dvc("repro", check=False)
    assert failed.returncode != 0
    assert "unknown key 'train.lerning_rate' (did you mean 'train.lr'?)" in failed.stderr
    assert "Running stage 'check_params'" in failed.stdout and "Running stage 'train" not in failed.stdout
    dvc_project.run("git", "checkout", "params.yaml")
    assert dvc_project.run("git", "status", "--porcelain").stdout == ""  # every output as it was

    # a new grid value reruns only what it changes
    params["sweep"]["lr"] = [0.1, 0.05]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = dvc_project.dvc("status").stdout
    assert "sweep@64-0.05" in status and "sweep_summary" in status
    assert "sweep@64-0.1:" not in status and "train@model1" not in status
    dvc_project.run("git", "checkout", "params.yaml")


def metric_count(shown):
    """How many values `dvc metrics show --json` shows (every leaf of every metrics file)."""
    def leaves(node):
        return sum(map(leaves, node.values())) if isinstance(node, dict) else 1
    return sum(leaves(file["data"]) for rev in shown.values() for file in rev["data"].values())


def clone_of(project, path):
    clone = DvcProject(path)
    project.run("git", "clone", "-q", str(project.path), str(path))
    return clone


def test_a_fresh_clone_on_another_machine_ends_clean_and_reruns_what_a_change_touches(reproduced, tmp_path):
    # another machine, simulated by another thread count (float reductions in another order): the committed
    # run used torch's default here, the clone runs with one thread. Everything but the prepared data is in
    # git, and fetch_mnist remakes that with the same bytes on any machine, so nothing downstream runs
    clone = clone_of(reproduced, tmp_path / "clone")
    clone.env["OMP_NUM_THREADS"] = "1"
    assert (clone.path / "report/index.html").is_file() and (clone.path / "models/model1.pt").is_file()
    assert not (clone.path / "data/mnist").exists()
    ran = re.findall(r"Running stage '([^']+)'", clone.dvc("repro").stdout)
    assert ran == ["fetch_mnist"]
    assert clone.run("git", "status", "--porcelain").stdout == ""
    assert "Data and pipelines are up to date" in clone.dvc("status").stdout

    # a change reruns what it touches and whatever missing input those stages need, with no manual step
    shutil.rmtree(clone.path / "data/mnist")
    params = yaml.safe_load((clone.path / "params.yaml").read_text())
    params["transfer"]["models"] = ["model2"]
    (clone.path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ran = re.findall(r"Running stage '([^']+)'", clone.dvc("repro").stdout)
    assert sorted(ran) == ["check_params", "fetch_mnist", "report", "transfer"]
    assert set(pd.read_csv(clone.path / "plots/transfer/sets.csv").columns) >= {"model2_accuracy"}
    assert "Data and pipelines are up to date" in clone.dvc("status").stdout


def test_a_team_shares_the_cache_through_a_dvc_remote(reproduced, tmp_path):
    # push from one clone, pull into another: status clean and `dvc repro` a no-op, with no stage run
    remote = tmp_path / "remote"
    reproduced.dvc("remote", "add", "--local", "-d", "team", str(remote))
    reproduced.dvc("push")
    clone = clone_of(reproduced, tmp_path / "clone")
    clone.dvc("remote", "add", "--local", "-d", "team", str(remote))
    clone.dvc("pull")
    pulled = clone.path / "data/mnist/train.pt"
    assert pulled.read_bytes() == (reproduced.path / "data/mnist/train.pt").read_bytes()
    assert "Data and pipelines are up to date" in clone.dvc("status").stdout
    assert "Running stage" not in clone.dvc("repro").stdout


EXP_SHOW_WITHOUT_HASHES = r"dvc exp show --drop '^(data|metrics|models|plots|reference|stages)(/[^:]*)?$'"


def machine(shared_git, shared_dvc, path):
    """A clone of the shared Git remote with the shared DVC remote as its default, its data pulled."""
    subprocess.run(["git", "clone", "-q", "-b", "main", str(shared_git), str(path)], check=True, capture_output=True,
                   timeout=120)
    clone = DvcProject(path)
    clone.dvc("remote", "add", "--local", "-d", "shared", str(shared_dvc))
    clone.dvc("pull")
    return clone


def test_experiments_run_on_two_machines_meet_in_one_dvc_exp_show(reproduced, tmp_path):
    """Two clones ("machines") each run another sweep point as an experiment and push it (its Git ref to a
    shared bare Git remote, its DVC outputs to a shared DVC remote); a third pulls both: `dvc exp show`
    lists each with its point's accuracy, and `dvc exp apply` of one brings its outputs, report included."""
    shared_git, shared_dvc = tmp_path / "shared.git", tmp_path / "shared-dvc"
    reproduced.run("git", "init", "-q", "--bare", str(shared_git))
    reproduced.run("git", "push", "-q", str(shared_git), "HEAD:refs/heads/main")
    reproduced.dvc("remote", "add", "--local", "shared", str(shared_dvc))
    reproduced.dvc("push", "-r", "shared")
    ran = {}
    for name, lr in (("lr-a", 0.05), ("lr-b", 0.02)):
        worker = machine(shared_git, shared_dvc, tmp_path / name)
        out = worker.dvc("exp", "run", "-n", name, "-S", f"sweep.lr=[{lr}]").stdout
        assert "Running stage 'sweep@64-" in out and "Running stage 'train@model1'" not in out
        ran[name] = json.loads((worker.path / "metrics/sweep_summary.json").read_text())["final_test_acc"]
        worker.dvc("exp", "push", "origin", name)
    assert ran["lr-a"].keys() == {"64-0.05", "128-1e-05"} and ran["lr-b"].keys() == {"64-0.02", "128-1e-05"}

    gatherer = machine(shared_git, shared_dvc, tmp_path / "gatherer")
    for name in ran:
        gatherer.dvc("exp", "pull", "origin", name)
    shown = {}
    for row in json.loads(gatherer.dvc("exp", "show", "--json").stdout):
        for exp in row.get("experiments") or []:
            for rev in exp["revs"]:
                metrics = rev["data"]["metrics"]["metrics/sweep_summary.json"]["data"]
                shown[rev["name"]] = metrics["final_test_acc"]
    assert shown == ran  # both machines' experiments, each with every point's accuracy
    table = gatherer.run(*EXP_SHOW_WITHOUT_HASHES.split()[:3], "--csv", "--drop",
                         EXP_SHOW_WITHOUT_HASHES.split("--drop ")[1].strip("'")).stdout
    header, *rows = table.splitlines()
    assert any(column.endswith("final_test_acc.64-0.05") for column in header.split(","))
    assert ".dir" not in table and {"lr-a", "lr-b"} <= {line.split(",")[0] for line in rows}

    gatherer.dvc("exp", "apply", "lr-a")
    assert json.loads((gatherer.path / "metrics/sweep_summary.json").read_text())["final_test_acc"] == ran["lr-a"]
    assert "Data and pipelines are up to date" in gatherer.dvc("status").stdout
    assert "batch 64, lr 0.05" in (gatherer.path / "report/index.html").read_text()


def test_the_report_and_the_dvc_plots_page_render_offline(reproduced, tmp_path):
    report = reproduced.path / "report/index.html"
    assert report.stat().st_size < 5_000_000
    assert_no_network_references(report.read_text())
    reproduced.dvc("plots", "show", "-o", str(tmp_path / "dvc_plots"))
    plots_page = tmp_path / "dvc_plots/index.html"
    assert_no_network_references(plots_page.read_text())
    for page in (report, plots_page):
        assert_every_chart_drew(page, tmp_path)


@pytest.mark.parametrize("damage, needle", [
    (lambda root: (root / "metrics/train/model2.json").write_text("{}\n"),
     "metrics/train/model2.json: missing 'final_test_acc'"),
    (lambda root: (root / "metrics/train/model2.json").write_text('{"final_test_acc": "0.99"}\n'),
     "metrics/train/model2.json: 'final_test_acc' must be a number, got '0.99'"),
    (lambda root: [p.unlink() for p in (root / "plots/transfer/figures").iterdir()],
     "plots/transfer/figures/confusion_untargeted.png: not found"),
    (lambda root: (root / "plots/transfer/sets.csv").write_text(""), "plots/transfer/sets.csv: not a readable CSV"),
])
def test_the_report_refuses_missing_or_emptied_inputs_with_one_line(reproduced, damage, needle):
    root = reproduced.path
    page = (root / "report/index.html").read_bytes()
    inputs = [*(root / "plots/transfer/figures").iterdir(), root / "metrics/train/model2.json",
              root / "plots/transfer/sets.csv"]
    saved = {path: path.read_bytes() for path in inputs}
    damage(root)
    try:
        result = reproduced.run(sys.executable, "-m", "stages.report", check=False)
        assert_clean_failure(result, needle)
        assert result.returncode == 2 and (root / "report/index.html").read_bytes() == page
    finally:
        for path, data in saved.items():
            path.write_bytes(data)


# A new defence is three files' worth of change: its stage module, its params section and its dvc.yaml
# entry (plus its name in robustness.models). Here a stand-in: a plain CNN with its own seed, presented as
# defence 9. Nothing else is edited: the report, check_params and the plots find it by themselves.
FAKE_DEFENCE_MODULE = '''"""Stage fake_defence: a CNN trained like model1 with a seed of its own, standing in for a defence."""
from stages.lib import cli
from stages.lib.data import load_model_inputs
from stages.lib.io import staged_outputs
from stages.lib.models import CnnSpec
from stages.lib.params import Section, Seed, StageParams, load_params
from stages.lib.runtime import Device, Threads, set_up
from stages.lib.training import HEADLINE, TrainSection, train_cnn, write_trained_model


class FakeDefenceSection(Section):
    seed: Seed


class Params(StageParams):
    device: Device
    threads: Threads
    model: CnnSpec
    train: TrainSection
    fake_defence: FakeDefenceSection


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True)
    args = parser.parse_args(argv)
    p = load_params(Params, args.params)
    device, threads = set_up(p.device, p.threads)
    train, test = load_model_inputs(args.data, device)
    model, history, summary = train_cnn(p.model, p.train.sgd(), p.fake_defence.seed, train, test,
                                        name="fake_defence", device=device, threads=threads)
    with staged_outputs() as stage:
        write_trained_model(stage, "fake_defence", model, p.model, args.model, history,
                            {k: summary[k] for k in HEADLINE}, {"role": "defence", "label": "defence 9 (fake)"})


if __name__ == "__main__":
    cli.run(main)
'''
FAKE_DEFENCE_STAGE = {
    "cmd": "python -m stages.fake_defence --data ${paths.mnist} --model ${paths.models}/fake_defence.pt",
    "deps": ["stages/fake_defence.py", "stages/__init__.py",
             *(f"stages/lib/{name}.py" for name in ("cli", "data", "errors", "io", "models", "params", "runtime",
                                                     "training")),
             "${paths.params_check}", "${paths.mnist}"],
    "params": ["device", "threads", "model", "train", "fake_defence"],
    "outs": [{"${paths.models}/fake_defence.pt": {"cache": False}}, {"${paths.models}/fake_defence.json": {"cache": False}},
             {"plots/train/fake_defence.csv": {"cache": False}}],
    "metrics": [{"metrics/train/fake_defence.json": {"cache": False}}],
}


def test_a_new_defence_is_its_module_params_and_stage_and_the_report_finds_it(reproduced, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(reproduced.path, root, symlinks=True)
    project = DvcProject(root)
    outputs = {path: path.read_bytes() for folder in ("metrics", "plots", "models", "data")
               for path in (root / folder).rglob("*") if path.is_file()}

    (root / "stages/fake_defence.py").write_text(FAKE_DEFENCE_MODULE)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["fake_defence"] = {"seed": 9}
    params["robustness"]["models"]["fake_defence"] = {"n_images": 16}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text())
    pipeline["stages"]["fake_defence"] = FAKE_DEFENCE_STAGE
    (root / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    ran = set(re.findall(r"Running stage '([^']+)'", project.dvc("repro").stdout))

    assert {"fake_defence", "robustness@fake_defence", "robustness_transfer", "report"} <= ran
    # check_params (its code changed), transfer and explorer (their models folder changed) may rerun: to
    # the same bytes
    assert ran <= {"check_params", "fake_defence", "robustness@fake_defence", "robustness_transfer", "transfer",
                   "explorer", "report"}
    changed = {str(path.relative_to(root)) for path, data in outputs.items()
               if not path.exists() or path.read_bytes() != data}
    assert changed == {"plots/robustness/transfer.csv"}  # the transfer table gains the new model's column
    page = (root / "report/index.html").read_text()
    findings = page[page.index('<div class="findings">'):]
    findings = findings[:findings.index("</div>")]
    section_5 = page[page.index("<h2>5."):]
    assert "<td>Defence 9</td>" in findings and "defence 9 (fake)" in section_5  # the findings row: its short label
    assert "Data and pipelines are up to date" in project.dvc("status").stdout
