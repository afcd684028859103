"""The GPU's pace for the project's CNN: one whole SGD step (forward, backward, update) run eagerly and
as a CUDA graph, against the project's training loop (training.train_epochs) on a training set the
size of MNIST's, at each batch size. Same CNN (params.yaml `model`), same device settings as the stages
(runtime.resolve_device: deterministic kernels, TF32 convolutions, float32 matrix products).

The step benchmarks repeat one fixed batch: they are the ceiling for that batch size. The loop draws its
batches from the seeded permutation, runs the partial last batch, and evaluates the test set after each
epoch, as a stage does; its rate is the best epoch after the first (the first includes the capture).

    python benchmarks/gpu_step.py [--batch-sizes 32 64 128] [--images 60000] [--epochs 3] [--variants]
"""
import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import model_from_params  # noqa: E402
from stages.lib.data import to_model_input  # noqa: E402
from stages.lib.models import to_device  # noqa: E402
from stages.lib.runtime import resolve_device  # noqa: E402
from stages.lib.training import Schedule, train_epochs  # noqa: E402


def timed(fn, repeats):
    """Seconds per call of fn, after warm-up calls, with the GPU's queue drained around the timing."""
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def step_rates(batch_size, device, repeats, memory_format=None):
    """(eager, CUDA graph) images/s of one whole SGD step on a fixed batch."""
    model = to_device(model_from_params(), device)
    if memory_format:
        model = model.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(batch_size, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch_size,), device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    eager = timed(step, repeats)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    graphed = timed(graph.replay, repeats)
    return batch_size / eager, batch_size / graphed


def loop_rate(batch_size, train, test, device, epochs):
    """images/s of the project's loop: the best epoch after the first."""
    model = to_device(model_from_params(), device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    schedule = Schedule(epochs=epochs, batch_size=batch_size, eval_batch_size=1000)
    seconds, start = [], time.perf_counter()
    for _ in train_epochs(model, train, test, schedule, optimizer, seed=0):  # a row: the epoch has synced
        seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
    return len(train[1]) / min(seconds[1:] or seconds)


def variants(batch_size, device, repeats):
    """The whole-step rates under each memory format x kernel choice x convolution precision, to show what
    the stages' settings (NCHW, deterministic kernels, TF32 convolutions) cost or save."""
    print(f"batch {batch_size}: layout, kernels, precision -> eager img/s, graph img/s")
    for layout, memory_format in (("NCHW", torch.contiguous_format), ("channels-last", torch.channels_last)):
        for deterministic in (True, False):
            for tf32 in (False, True):
                torch.use_deterministic_algorithms(deterministic)
                torch.backends.cudnn.allow_tf32 = tf32
                eager, graphed = step_rates(batch_size, device, repeats, memory_format)
                print(f"  {layout:13s} {'deterministic' if deterministic else 'any':13s} "
                      f"{'TF32' if tf32 else 'FP32':4s} convolutions -> {eager:9,.0f} {graphed:9,.0f}", flush=True)
    resolve_device("cuda")  # the stages' settings again


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--images", type=int, default=60_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--variants", action="store_true", help="also the step rates under other settings")
    args = parser.parse_args()
    device = resolve_device("cuda")
    if args.variants:
        variants(64, device, args.repeats)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images + 10_000, 28, 28), generator=generator, dtype=torch.uint8)
    labels = torch.randint(0, 10, (args.images + 10_000,), generator=generator)
    inputs, labels = to_model_input(images).to(device), labels.to(device)
    train = inputs[:args.images], labels[:args.images]
    test = inputs[args.images:], labels[args.images:]
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, {args.images} training images, "
          f"the stages' settings (deterministic kernels, TF32 convolutions)")
    print("batch   eager img/s   graph img/s   loop img/s   loop/graph   loop/eager", flush=True)
    for batch_size in args.batch_sizes:
        eager, graphed = step_rates(batch_size, device, args.repeats)
        loop = loop_rate(batch_size, train, test, device, args.epochs)
        print(f"{batch_size:5d}  {eager:12,.0f}  {graphed:12,.0f}  {loop:11,.0f}  {loop / graphed:10.0%}  "
              f"{loop / eager:10.2f}x", flush=True)


if __name__ == "__main__":
    main()
