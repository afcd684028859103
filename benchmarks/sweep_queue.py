"""Wall time of sweep points run one after another (`dvc repro`, `threads: auto`) against the same points as
queued experiments (`dvc exp run --queue`, then the queue's workers, N at a time, each with cores / N torch
threads).

It works in a temporary clone of this repository's HEAD, with `data.source` set to a folder of the four
MNIST IDX files (e.g. .cache/mnist/MNIST/raw after `make mnist`), so the grid, the epochs and the data
are the only changes. The default is the committed sweep grid and its epoch count: the full sweep.

    python benchmarks/sweep_queue.py --data .cache/mnist/MNIST/raw [--epochs 2] [--batch-size 64 128]
                                     [--lr 0.1 0.01] [--jobs 2]
"""
import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import ROOT, params  # noqa: E402


def main():
    defaults = params().sweep
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of the four MNIST IDX files")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, nargs="+", default=defaults.batch_size)
    parser.add_argument("--lr", type=float, nargs="+", default=defaults.lr)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    points = list(itertools.product(args.batch_size, args.lr))

    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        env = {**os.environ, "DVC_NO_ANALYTICS": "1",
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

        def dvc(*command, check=True, **options):
            return subprocess.run([sys.executable, "-m", "dvc", *command], cwd=clone, env=env, check=check,
                                  **options)

        def git(*command):
            subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *command],
                           cwd=clone, check=True, stdout=subprocess.DEVNULL)

        # an experiment commits every output that dvc.lock names, and this clone has none of the committed
        # ones in its cache: start the lock afresh
        (clone / "dvc.lock").unlink(missing_ok=True)
        params_file = clone / "params.yaml"
        committed = yaml.safe_load(params_file.read_text())
        committed["data"]["source"] = str(args.data.resolve())
        committed["sweep"].update(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
        params_file.write_text(yaml.safe_dump(committed, sort_keys=False))
        dvc("repro", "fetch_mnist", stdout=subprocess.DEVNULL)
        git("add", "-A")
        git("commit", "-qm", "benchmark grid")

        start = time.perf_counter()
        dvc("repro", "--no-run-cache", "sweep", stdout=subprocess.DEVNULL)
        sequential = time.perf_counter() - start
        print(f"{len(points)} sweep points x {args.epochs} epochs, one after another (threads: auto): "
              f"{sequential:.0f} s")

        for batch_size, lr in points:
            dvc("exp", "run", "--queue", "-S", f"sweep.batch_size=[{batch_size}]", "-S", f"sweep.lr=[{lr}]",
                "-S", f"threads={threads}", "sweep", stdout=subprocess.DEVNULL)
        start = time.perf_counter()
        # `--run-all` starts the same workers as `dvc queue start --jobs N` and waits for their results, with no
        # polling process beside the timed jobs; the workers run detached and would hold an inherited pipe open
        dvc("exp", "run", "--run-all", "--jobs", str(args.jobs), check=False,  # failures are counted below
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        parallel = time.perf_counter() - start
        status = dvc("queue", "status", capture_output=True, text=True).stdout
        succeeded = status.count("Success")
        if succeeded < len(points):
            failed = [line.split()[1] for line in status.splitlines() if line.endswith("Failed")]
            print(status, dvc("queue", "logs", failed[0], capture_output=True, text=True).stdout[-3000:])
        print(f"the same points queued, --jobs {args.jobs}, threads {threads} each: {parallel:.0f} s "
              f"({succeeded} of {len(points)} succeeded); parallel / sequential: {parallel / sequential:.2f}")


if __name__ == "__main__":
    main()
