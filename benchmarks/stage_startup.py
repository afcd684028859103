"""Stage start-up, measured as DVC pays it: every figure is a fresh interpreter (the best of --repeat
wall times, after one untimed torch import that warms the file cache), importing what a stage imports.

It prints the packages every stage pays for (torch; torch._dynamo, which torch.optim imports when the
first optimizer is built and torchvision when it is imported; CUDA's initialisation where there is a GPU)
and then each stage module's own import, and the check_params stage run whole.

    python benchmarks/stage_startup.py [--repeat 3] [--stages check_params train ...]
"""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = sorted(path.stem for path in (ROOT / "stages").glob("*.py") if path.stem != "__init__")  # one module a stage
PACKAGES = {
    "python": "pass",
    "import torch": "import torch",
    "torch + one optimizer built (imports torch._dynamo)":
        "import torch; torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)",
    "import torchvision (imports torch._dynamo)": "import torchvision",
    "torch + CUDA initialised": "import torch; torch.zeros(1, device='cuda'); torch.cuda.synchronize()",
}


def wall(args, repeat):
    """The best wall time in seconds of `python args` run `repeat` times from the repository root."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], cwd=ROOT, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def has_cuda():
    """Whether torch sees a GPU; the first torch import, untimed, which also warms the file cache."""
    code = "import torch; print(torch.cuda.is_available())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "True"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is printed")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=STAGES, metavar="STAGE",
                        help=f"stage modules to import (default: all: {', '.join(STAGES)})")
    args = parser.parse_args()
    cuda = has_cuda()
    print(f"fresh interpreters, best of {args.repeat} (s):")
    for name, code in PACKAGES.items():
        if cuda or "cuda" not in code:
            print(f"  {name:55s} {wall(['-c', code], args.repeat):6.2f}")
    for stage in args.stages:
        print(f"  {'import stages.' + stage:55s} {wall(['-c', f'import stages.{stage}'], args.repeat):6.2f}")
    with tempfile.TemporaryDirectory() as scratch:
        command = ["-m", "stages.check_params", "--out", str(Path(scratch) / "params_check.txt")]
        print(f"  {'the check_params stage, run whole':55s} {wall(command, args.repeat):6.2f}")


if __name__ == "__main__":
    main()
