"""One DVC experiment per task of a cluster array job (Slurm, a Kubernetes Indexed Job), gathered through
the shared Git and DVC remotes.

A grid file (cluster/grid.yaml) names the Git remote and, per params key, the values to try; the tasks
are their combinations, in order. Task i runs, in a clone of the project:

    dvc pull fetch_mnist                       # the prepared data from the DVC remote
    dvc exp run --temp -n <name> -S key=value ...
    dvc exp push <remote> <name>               # the experiment's Git ref, and its DVC outputs

and any machine then gathers every task's experiment with `dvc exp pull <remote> <name>` (or all of
them: `dvc exp pull --all-commits <remote>`) and `dvc exp show` (docs/scale.md).

    python cluster/experiments.py cluster/grid.yaml --count          # how many tasks
    python cluster/experiments.py cluster/grid.yaml --task 3 --dry-run
    python cluster/experiments.py cluster/grid.yaml --task "$SLURM_ARRAY_TASK_ID"
"""
import argparse
import itertools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def read_grid(path):
    """(remote, {params key: [values]}) from a grid file; one line naming the fault otherwise."""
    try:
        grid = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise SystemExit(f"error: {path}: cannot be read ({error})") from None
    if not isinstance(grid, dict) or set(grid) != {"remote", "grid"}:
        raise SystemExit(f"error: {path}: must have exactly the keys 'remote' and 'grid'")
    remote, axes = grid["remote"], grid["grid"]
    if not isinstance(remote, str) or not NAME.fullmatch(remote):
        raise SystemExit(f"error: {path}: 'remote' must name a Git remote, got {remote!r}")
    if not isinstance(axes, dict) or not axes:
        raise SystemExit(f"error: {path}: 'grid' must map params keys to lists of values")
    for key, values in axes.items():
        if not isinstance(key, str) or not re.fullmatch(r"[a-z_][a-z0-9_]*(\.[A-Za-z0-9_]+)*", key):
            raise SystemExit(f"error: {path}: 'grid' key {key!r} is not a dotted params key")
        if not isinstance(values, list) or not values:
            raise SystemExit(f"error: {path}: 'grid.{key}' must be a non-empty list of values")
    return remote, axes


def tasks(axes):
    """Every combination of the axes' values, in order: [{key: value}]."""
    return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


def value_text(value):
    """A value as `dvc exp run -S key=value` takes it: YAML flow style (lists as [a, b], None as null)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("\n...")


def experiment_name(setting):
    """A Git-ref-safe name that says the setting: sweep.lr=[0.05] -> lr-0.05."""
    parts = []
    for key, value in setting.items():
        text = re.sub(r"[^A-Za-z0-9._]+", "_", value_text(value)).strip("_.") or "x"
        parts.append(f"{key.rsplit('.', 1)[-1]}-{text}")
    return "_".join(parts)


def commands(remote, setting):
    """The commands task `setting` runs, in order."""
    name = experiment_name(setting)
    run = ["dvc", "exp", "run", "--temp", "-n", name]
    for key, value in setting.items():
        run += ["-S", f"{key}={value_text(value)}"]
    return [["dvc", "pull", "fetch_mnist"], run, ["dvc", "exp", "push", remote, name]]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("grid", help="the grid file, e.g. cluster/grid.yaml")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--count", action="store_true", help="print how many tasks the grid has, then exit")
    what.add_argument("--task", type=int, help="the task to run: 0 .. count - 1 (an array job's index)")
    parser.add_argument("--dry-run", action="store_true", help="print the task's commands instead of running them")
    args = parser.parse_args(argv)
    remote, axes = read_grid(args.grid)
    settings = tasks(axes)
    if args.count:
        print(len(settings))
        return
    if not 0 <= args.task < len(settings):
        raise SystemExit(f"error: --task must be from 0 to {len(settings) - 1} for {args.grid}, got {args.task}")
    for command in commands(remote, settings[args.task]):
        print(shlex.join(command), flush=True)
        if not args.dry_run:
            subprocess.run(command, check=True)


if __name__ == "__main__":
    sys.exit(main())
