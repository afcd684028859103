"""Training throughput: the project's loop against the conventional torchvision path.

The project's loop keeps the whole set as one [-1, 1] float tensor and draws batches by index from a
seeded permutation. The conventional path is torchvision's datasets.MNIST (PIL image per item) with
ToTensor and Normalize through a DataLoader. Same model, batch size, thread count and images.
Prints images/s of both, their ratio, and achieved GFLOP/s against a matmul peak measured here.

    python benchmarks/train_throughput.py [--batch-size 64] [--images 8192]
"""
import argparse
import struct
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import best_of, count_flops, matmul_peak_gflops, model_from_params  # noqa: E402
from stages.lib.data import to_model_input  # noqa: E402
from stages.lib.training import train_classifier  # noqa: E402


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
        train_classifier(model, (x, labels), (x[:batch_size], labels[:batch_size]), epochs=1,
                         batch_size=batch_size, lr=0.01, momentum=0.0, seed=0, eval_batch_size=batch_size)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=8192)
    args = parser.parse_args()
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
