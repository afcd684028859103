"""Training throughput: the project's loop against the conventional torchvision path.

The project's loop keeps the whole set as one [-1, 1] float tensor and draws batches by index from a
seeded permutation. The conventional path is torchvision's datasets.MNIST (PIL image per item) with
ToTensor and Normalize through a DataLoader. Same model, batch size, thread count and images.
Prints images/s of both, their ratio, and achieved GFLOP/s against a matmul peak measured here.

With --full DIR (a fetch_mnist output folder, e.g. data/mnist after `make mnist`), it instead trains
the CNN of params.yaml on that whole training set with train@model1's settings and prints images/s
per epoch, to show whether throughput falls with the size of the data or late in training.

    python benchmarks/train_throughput.py [--batch-size 64] [--images 8192]
    python benchmarks/train_throughput.py --full data/mnist [--epochs 10]
"""
import argparse
import struct
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import best_of, count_flops, matmul_peak_gflops, model_from_params, params, train_sgd  # noqa: E402
from stages.lib.data import load_model_inputs, to_model_input  # noqa: E402


def write_raw_mnist(root, images, labels):
    """The raw files torchvision.datasets.MNIST loads (no download needed)."""
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 0x803, len(images), 28, 28) + images.numpy().tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 0x801, len(labels)) + labels.to(torch.uint8).numpy().tobytes())


def project_loop(images, labels, batch_size):
    x = to_model_input(images)
    model = model_from_params()

    def epoch():
        train_sgd(model, (x, labels), (x[:batch_size], labels[:batch_size]), epochs=1, batch_size=batch_size,
                  lr=0.01, eval_batch_size=batch_size)
    return best_of(epoch)


def conventional_loop(root, batch_size):
    dataset = torchvision.datasets.MNIST(root, train=True, download=False, transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0)
    model = model_from_params()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def epoch():
        model.train()
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return best_of(epoch)


def training_step_flops(batch_size):
    model = model_from_params()
    x, y = torch.randn(batch_size, 1, 28, 28), torch.randint(0, 10, (batch_size,))
    return count_flops(lambda: F.cross_entropy(model(x), y).backward()) / batch_size


def full_scale(data_dir, epochs):
    """images/s of each epoch of train@model1's training on the whole set in data_dir."""
    p = params().train
    (images, labels), test = load_model_inputs(data_dir, torch.device("cpu"))
    model = model_from_params(seed=p.models["model1"].seed)
    flops, peak = training_step_flops(p.batch_size), matmul_peak_gflops()
    print(f"{len(labels)} training images, batch size {p.batch_size}, lr {p.lr}, threads {torch.get_num_threads()}, "
          f"matmul peak {peak:.1f} GFLOP/s")
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        history = train_sgd(model, (images, labels), test, epochs=1, batch_size=p.batch_size, lr=p.lr,
                            momentum=p.momentum, seed=epoch, eval_batch_size=p.eval_batch_size)
        per_s = len(labels) / (time.perf_counter() - start)
        print(f"epoch {epoch:3d}: {per_s:7.0f} images/s ({per_s * flops / 1e9 / peak:.0%} of the matmul peak, "
              f"evaluation on the test set included); test accuracy {history[0]['test_acc']:.4f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=8192)
    parser.add_argument("--full", metavar="DIR", help="per-epoch throughput on the whole training set in DIR")
    parser.add_argument("--epochs", type=int, default=10, help="with --full")
    args = parser.parse_args()
    if args.full:
        return full_scale(args.full, args.epochs)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, 28, 28), generator=generator, dtype=torch.uint8)
    labels = torch.randint(0, 10, (args.images,), generator=generator)
    project = args.images / project_loop(images, labels, args.batch_size)
    with tempfile.TemporaryDirectory() as root:
        write_raw_mnist(root, images, labels)
        conventional = args.images / conventional_loop(root, args.batch_size)
    flops = training_step_flops(args.batch_size)
    peak = matmul_peak_gflops()
    achieved = project * flops / 1e9
    print(f"threads {torch.get_num_threads()}, batch size {args.batch_size}, {args.images} images, "
          f"{flops / 1e6:.1f} MFLOP per training image (forward + backward)")
    print(f"project loop      {project:9.0f} images/s")
    print(f"conventional path {conventional:9.0f} images/s")
    print(f"ratio             {project / conventional:9.2f}x")
    print(f"achieved          {achieved:9.1f} GFLOP/s = {achieved / peak:.0%} of the matmul peak ({peak:.1f} GFLOP/s)")


if __name__ == "__main__":
    main()
