"""Per-stage wall times of a `dvc repro` whose every output line was prefixed with a Unix time
(benchmarks/gpu_check.sh does so): a stage runs from its "Running stage" line to the next one, the last
to the end of the log (or to `--end`, the moment the run stopped).

    python benchmarks/stage_times.py LOG --start UNIX_TIME [--end UNIX_TIME]
"""
import argparse
import re
import time


def stage_times(lines, end):
    """[(stage, seconds)] in the order the stages ran."""
    stamped = [line.split(" ", 1) for line in lines if re.match(r"^\d+\.\d+ ", line)]
    starts = [(float(t), m.group(1)) for t, text in stamped if (m := re.match(r"Running stage '([^']+)'", text))]
    ends = [t for t, _ in starts[1:]] + [end]
    return [(name, stop - start) for (start, name), stop in zip(starts, ends)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log")
    parser.add_argument("--start", type=float, required=True, help="when `dvc repro` started")
    parser.add_argument("--end", type=float, default=None, help="when it stopped (default: now)")
    args = parser.parse_args()
    end = args.end or time.time()
    with open(args.log) as log:
        times = stage_times(log.readlines(), end)
    for name, seconds in times:
        print(f"  {name:40s} {seconds:7.1f} s")
    print(f"whole pipeline: {end - args.start:.1f} s wall, {len(times)} stages run")


if __name__ == "__main__":
    main()
