"""cluster/: the commands a cluster array job runs, one DVC experiment per task, checked without a
scheduler; the Slurm script and the Kubernetes Job run exactly those for their task index."""
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT

SCRIPT = ROOT / "cluster/experiments.py"


def experiments(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def write_grid(path, grid):
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


def test_each_task_runs_one_experiment_and_pushes_it(tmp_path):
    grid = write_grid(tmp_path / "grid.yaml", {"remote": "shared", "grid": {
        "sweep.lr": [[0.1], [0.05]], "robustness.models.adversarial_training.n_images": [None, 1000]}})
    assert experiments(grid, "--count").stdout == "4\n"
    expected = {
        0: ["dvc pull fetch_mnist",
            "dvc exp run --temp -n lr-0.1_n_images-null -S 'sweep.lr=[0.1]' "
            "-S robustness.models.adversarial_training.n_images=null",
            "dvc exp push shared lr-0.1_n_images-null"],
        3: ["dvc pull fetch_mnist",
            "dvc exp run --temp -n lr-0.05_n_images-1000 -S 'sweep.lr=[0.05]' "
            "-S robustness.models.adversarial_training.n_images=1000",
            "dvc exp push shared lr-0.05_n_images-1000"],
    }
    for task, lines in expected.items():
        result = experiments(grid, "--task", task, "--dry-run")
        assert result.returncode == 0 and result.stdout.splitlines() == lines, result.stderr
    names = {experiments(grid, "--task", t, "--dry-run").stdout.split()[-1] for t in range(4)}
    assert len(names) == 4  # every task its own experiment
    for name in names:  # each a valid Git ref name: DVC keeps experiments as refs
        assert subprocess.run(["git", "check-ref-format", f"refs/exps/{name}"]).returncode == 0, name


@pytest.mark.parametrize("grid, needle", [
    ({"remote": "origin"}, "must have exactly the keys 'remote' and 'grid'"),
    ({"remote": "bad remote", "grid": {"sweep.lr": [[0.1]]}}, "'remote' must name a Git remote"),
    ({"remote": "origin", "grid": {"sweep.lr": []}}, "'grid.sweep.lr' must be a non-empty list of values"),
    ({"remote": "origin", "grid": {"sweep lr; rm -rf": [[0.1]]}}, "is not a dotted params key"),
])
def test_a_bad_grid_is_one_line_naming_the_fault(tmp_path, grid, needle):
    result = experiments(write_grid(tmp_path / "grid.yaml", grid), "--count")
    assert result.returncode != 0 and needle in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_task_outside_the_grid_is_refused(tmp_path):
    grid = write_grid(tmp_path / "grid.yaml", {"remote": "origin", "grid": {"sweep.lr": [[0.1], [0.05]]}})
    result = experiments(grid, "--task", 2)
    assert result.returncode != 0 and "--task must be from 0 to 1" in result.stderr and not result.stdout


def test_the_slurm_script_and_the_kubernetes_job_run_the_committed_grid_by_task_index():
    count = int(experiments(ROOT / "cluster/grid.yaml", "--count").stdout)
    slurm = (ROOT / "cluster/slurm.sh").read_text()
    assert subprocess.run(["bash", "-n", str(ROOT / "cluster/slurm.sh")]).returncode == 0
    assert 'cluster/experiments.py cluster/grid.yaml --task "$SLURM_ARRAY_TASK_ID"' in slurm
    assert "--array=0-$(( $(python3 cluster/experiments.py cluster/grid.yaml --count) - 1 ))" in slurm
    job = yaml.safe_load((ROOT / "cluster/job.yaml").read_text())
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == count
    command = " ".join(job["spec"]["template"]["spec"]["containers"][0]["args"])
    assert 'cluster/experiments.py cluster/grid.yaml --task "$JOB_COMPLETION_INDEX"' in command
