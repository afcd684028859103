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


# One GPU per worker: each stage process on a machine with several GPUs holds one no other holds. The
# mechanism on the CPU: stage processes that see two (pretended) GPUs resolve `device: auto`.
PRETEND_GPUS = """
import sys, time
from pathlib import Path
import torch
from stages.lib import runtime
torch.cuda.is_available = lambda: True
torch.cuda.device_count = lambda: 2
torch.cuda.set_device = lambda index: None
runtime.GPU_LOCKS = Path(sys.argv[1])
device = runtime.resolve_device(sys.argv[2])
print(device, flush=True)
time.sleep(float(sys.argv[3]))
"""


def resolve_in_process(locks, name, hold_s):
    import sys

    return subprocess.Popen([sys.executable, "-c", PRETEND_GPUS, str(locks), name, str(hold_s)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_workers_on_two_gpus_each_take_their_own_and_a_third_waits_for_one(tmp_path):
    first, second = resolve_in_process(tmp_path, "auto", 3), resolve_in_process(tmp_path, "auto", 3)
    seen = {first.stdout.readline().strip(), second.stdout.readline().strip()}
    assert seen == {"cuda:0", "cuda:1"}
    third = resolve_in_process(tmp_path, "auto", 0)
    out, _ = third.communicate(timeout=60)
    assert "waiting for GPU" in out and out.splitlines()[-1] in {"cuda:0", "cuda:1"}
    assert first.wait(timeout=60) == 0 and second.wait(timeout=60) == 0 and third.returncode == 0


def test_a_named_gpu_is_taken_as_named_and_one_the_machine_lacks_is_one_line(tmp_path):
    named = resolve_in_process(tmp_path, "cuda:1", 0)
    assert named.communicate(timeout=60)[0].strip() == "cuda:1"
    missing = resolve_in_process(tmp_path, "cuda:2", 0)
    _, err = missing.communicate(timeout=60)
    assert missing.returncode != 0 and "'device' is 'cuda:2' but this machine has 2 GPU(s), cuda:0 to cuda:1" in err
