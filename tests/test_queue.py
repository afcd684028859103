"""The sweep as parallel DVC experiments: `dvc exp run --queue` + `dvc queue start -j 2` on a fresh clone
(nothing in its DVC cache), one torch thread per worker, gives the same results as running the same points
one after another."""
import json
import subprocess
import time

import yaml

from tests.conftest import DvcProject, params_with

QUEUE_PROFILE = {
    "data.source": "sample", "model.channels": [4, 8], "model.hidden": 16, "sweep.epochs": 1,
    "sweep.batch_size": [64], "sweep.lr": [0.1], "sweep.extra.batch_size": [128], "sweep.extra.lr": [1e-05],
    "threads": 1,
}
POINTS = {"lr-0.1": "64-0.1", "lr-0.01": "64-0.01"}  # experiment name: the sweep point it trains


def queue_status(project):
    """{experiment name: status} from `dvc queue status`."""
    lines = project.dvc("queue", "status").stdout.splitlines()
    return {fields[1]: fields[-1] for fields in (line.split() for line in lines) if len(fields) >= 4
            and fields[1] in POINTS}


def test_the_sweep_queued_on_two_workers_from_a_fresh_clone_matches_the_sequential_run(dvc_project, tmp_path):
    # the committed state of a run pipeline, cloned: data/mnist is in dvc.lock but in no cache of the clone
    origin = dvc_project
    (origin.path / "params.yaml").write_text(yaml.safe_dump(params_with(**QUEUE_PROFILE), sort_keys=False))
    origin.dvc("repro", "fetch_mnist")
    origin.run("git", "add", "-A")
    origin.run("git", "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-qm", "data")
    project = DvcProject(tmp_path / "clone")
    origin.run("git", "clone", "-q", str(origin.path), str(project.path))
    assert not (project.path / "data/mnist").exists() and not (project.path / ".dvc/cache").exists()

    for name, point in POINTS.items():
        lr = point.split("-")[1]
        project.dvc("exp", "run", "--queue", "-n", name, "-S", f"sweep.lr=[{lr}]", "sweep")
    assert set(queue_status(project).values()) == {"Queued"}
    # the workers run detached and keep any inherited pipe open: give them none
    started = subprocess.run([*project.dvc_command, "queue", "start", "--jobs", "2"], cwd=project.path,
                             env=project.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, timeout=120)
    assert started.returncode == 0
    try:
        deadline = time.monotonic() + 600
        while set(status := queue_status(project)) != set(POINTS) or {"Queued", "Running"} & set(status.values()):
            assert time.monotonic() < deadline, status
            time.sleep(2)
        assert status == {name: "Success" for name in POINTS}, [
            project.dvc("queue", "logs", name, check=False).stdout for name in POINTS]
    finally:
        project.dvc("queue", "stop", "--kill", check=False)

    experiments = json.loads(project.dvc("exp", "show", "--json").stdout)
    revs = dict(experiment_revs(experiments))
    assert set(revs) == set(POINTS)

    # the same points, one after another in the workspace, with the same thread count
    params = params_with(**QUEUE_PROFILE)
    params["sweep"]["lr"] = [0.1, 0.01]
    (project.path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sequential = project.dvc("repro", "--no-run-cache", "sweep").stdout
    for name, point in POINTS.items():
        assert f"Running stage 'sweep@{point}'" in sequential
        queued = json.loads(project.run("git", "show", f"{revs[name]}:metrics/sweep/{point}.json").stdout)
        assert queued["threads"] == 1
        assert queued == json.loads((project.path / f"metrics/sweep/{point}.json").read_text()), point
        queued_curve = project.run("git", "show", f"{revs[name]}:plots/sweep/{point}.csv").stdout
        assert queued_curve == (project.path / f"plots/sweep/{point}.csv").read_text(), point


def experiment_revs(node):
    """(name, rev) of every named experiment in `dvc exp show --json`."""
    if isinstance(node, dict):
        if node.get("name") in POINTS and node.get("rev"):
            yield node["name"], node["rev"]
        for value in node.values():
            yield from experiment_revs(value)
    elif isinstance(node, list):
        for value in node:
            yield from experiment_revs(value)
