"""What a recompute on another machine moves, file by file, in two ways:

    python benchmarks/recompute_drift.py --threads 1 --stages attack@untargeted train@model1
    python benchmarks/recompute_drift.py --against REV

The first reruns stages with another torch thread count (float reductions in another order, as on
another CPU) in a scratch copy of the project (it needs data/mnist: make repro) and compares what they
write with the committed outputs. The second compares the committed outputs with those of git revision
REV, e.g. the same pipeline run on another machine. Either way, per output ("here": the committed file,
"there": the recompute or REV's): whether its bytes are the same; for a changed CSV, how many rows differ and the largest change per column; for a metrics file, each
value that moved. Nothing in the working tree is written.
"""
import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]


def stage_commands():
    """{stage name: (command, [committed output paths])} of dvc.yaml, as DVC resolves it."""
    from dvc.repo import Repo

    stages = {}
    for stage in Repo(str(ROOT)).index.stages:
        outs = [str(o.def_path) for o in stage.outs if not o.use_cache]
        stages[stage.name] = (stage.cmd, outs)
    return stages


def compare_csv(before, after):
    """(rows that differ, {column: largest absolute change}) over the columns both tables have; None for
    the rows where the two differ in length."""
    columns = [c for c in before.columns if c in after.columns]
    if len(before) != len(after):
        return None, {}
    before, after = before[columns], after[columns]
    numeric = [c for c in columns if pd.api.types.is_numeric_dtype(before[c])]
    changed = ~((before == after) | (before.isna() & after.isna())).all(axis=1)
    return int(changed.sum()), {c: float((before[c] - after[c]).abs().max()) for c in numeric
                                if not before[c].equals(after[c])}


def compare(path, scratch):
    ours, theirs = ROOT / path, scratch / path
    if ours.is_dir():
        return [line for name in sorted(p.relative_to(ROOT) for p in ours.rglob("*") if p.is_file())
                for line in compare(name, scratch)]
    if not theirs.is_file():
        return [f"  {path}: only in one of the two"]
    if ours.read_bytes() == theirs.read_bytes():
        return [f"  {path}: the same bytes"]
    if ours.suffix == ".csv":
        a, b = pd.read_csv(ours), pd.read_csv(theirs)
        rows, moved = compare_csv(a, b)
        if rows is None:
            return [f"  {path}: {len(b):,} rows there, {len(a):,} here"]
        detail = ", ".join(f"{c} by at most {v:.3g}" for c, v in moved.items())
        return [f"  {path}: {rows:,} of {len(a):,} rows differ" + (f" ({detail})" if detail else "")]
    if ours.suffix == ".json":
        a, b = json.loads(ours.read_text()), json.loads(theirs.read_text())
        moved = {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)} if isinstance(a, dict) else {"": (a, b)}
        return [f"  {path}: " + ", ".join(f"{k} here {x}, there {y}" for k, (x, y) in moved.items())]
    return [f"  {path}: other bytes"]


def outputs_at(rev, paths, into):
    """The committed files under `paths` as they were at git revision rev, written under `into`."""
    listed = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, "--", *paths], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.split()
    for name in listed:
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        (into / name).write_bytes(subprocess.run(["git", "show", f"{rev}:{name}"], cwd=ROOT, check=True,
                                                 capture_output=True).stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, help="the thread count of the recompute")
    parser.add_argument("--stages", nargs="+", help="stage names as `dvc stage list` gives them")
    parser.add_argument("--against", metavar="REV", help="a git revision whose committed outputs to compare with")
    args = parser.parse_args()
    if bool(args.against) == bool(args.threads and args.stages):
        sys.exit("error: give either --threads and --stages, or --against")
    commands = stage_commands()
    unknown = [s for s in args.stages or () if s not in commands]
    if unknown:
        sys.exit(f"error: unknown stage {unknown[0]}; see `dvc stage list`")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        if args.against:
            outs = sorted({out for _, stage_outs in commands.values() for out in stage_outs
                           if not out.startswith("report/")})
            outputs_at(args.against, outs, scratch)
            print(f"the committed outputs against {args.against}")
            for out in outs:
                if (scratch / out).exists() and (ROOT / out).exists():
                    print("\n".join(compare(out, scratch)))
            return
        for name in ("stages", "reference"):
            shutil.copytree(ROOT / name, scratch / name, ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("data", "models"):
            shutil.copytree(ROOT / name, scratch / name)
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        (scratch / "params.yaml").write_text(yaml.safe_dump({**params, "threads": args.threads}, sort_keys=False))
        print(f"threads {args.threads} (the committed results: the machine's default)")
        for name in args.stages:
            command, outs = commands[name]
            began = time.perf_counter()
            subprocess.run(shlex.split(command.replace("python", shlex.quote(sys.executable), 1)), cwd=scratch,
                           check=True, capture_output=True, env={"PYTHONPATH": str(scratch), "PATH": "/usr/bin:/bin"})
            print(f"{name}: {time.perf_counter() - began:.0f} s")
            for out in outs:
                print("\n".join(compare(out, scratch)))


if __name__ == "__main__":
    main()
