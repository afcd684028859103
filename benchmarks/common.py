"""What both benchmarks share: the CNN from params.yaml, a matmul peak and a FLOP counter."""
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from stages.check_params import load_all
from stages.lib.models import mnist_cnn
from stages.lib.training import Schedule, train_epochs

ROOT = Path(__file__).resolve().parents[1]


def params():
    """params.yaml, validated as the stages read it: a namespace of its sections."""
    return load_all(ROOT / "params.yaml")


def model_from_params(seed=0):
    torch.manual_seed(seed)
    return mnist_cnn(params().model)


def train_sgd(model, train, test, *, epochs, batch_size, lr, momentum=0.0, seed=0, eval_batch_size=1000,
              desc=None):
    """History rows of model trained by SGD with the project's loop."""
    schedule = Schedule(epochs=epochs, batch_size=batch_size, eval_batch_size=eval_batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    return list(train_epochs(model, train, test, schedule, optimizer, seed=seed, desc=desc))


def matmul_peak_gflops(n=1024, seconds=2.0):
    """Achieved fp32 GFLOP/s of an n x n matmul, the best of repeated timings."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(5):
            a @ b
        best = max(best, 5 * 2 * n ** 3 / (time.perf_counter() - start) / 1e9)
    return best


def count_flops(fn):
    """FLOPs that torch's FlopCounterMode counts while fn() runs (matmuls and convolutions)."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def best_of(fn, repeats=3):
    """The shortest wall time of fn() over repeats (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
