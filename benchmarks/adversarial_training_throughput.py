"""Adversarial-training throughput: images/s of one epoch of plain training, of the fast FGSM training
(random start, one step) and of PGD-k training (the adversarial_training default), on the same images
with the CNN and settings of params.yaml, and each one's cost relative to plain training.

On a GPU (`--device auto` finds one) the stages replay each training step as a CUDA graph; there the
PGD-k run is repeated eagerly (train_epochs' static_steps=False), to print the graph's speed-up and
whether both runs end with the same weights, bit for bit, as they must.

    python benchmarks/adversarial_training_throughput.py [--images 8192] [--pgd-steps 10] [--device auto]
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import model_from_params, params  # noqa: E402
from stages.lib.data import PIXEL_RANGE, to_model_input  # noqa: E402
from stages.lib.defences import adversarial_loss  # noqa: E402
from stages.lib.models import to_device  # noqa: E402
from stages.lib.runtime import resolve_device  # noqa: E402
from stages.lib.training import Schedule, clean_loss, graph_safe_adam, train_epochs  # noqa: E402
from stages.lib.units import model_units  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8192)
    parser.add_argument("--pgd-steps", type=int, default=10)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    device = resolve_device(args.device)
    a = params().adversarial_training
    generator = torch.Generator().manual_seed(0)
    images = to_model_input(torch.randint(0, 256, (args.images, 28, 28), generator=generator, dtype=torch.uint8))
    labels = torch.randint(0, 10, (args.images,), generator=generator)
    train = images.to(device), labels.to(device)
    test = train[0][:a.eval_batch_size], train[1][:a.eval_batch_size]
    share, epsilon, step_size = a.adversarial_share, model_units(a.epsilon), model_units(a.step_size)
    variants = {"plain": clean_loss,
                "fgsm (random start, 1 step)": adversarial_loss(epsilon=epsilon, step_size=step_size, steps=1,
                                                                share=share, bounds=PIXEL_RANGE),
                f"pgd-{args.pgd_steps}": adversarial_loss(epsilon=epsilon, step_size=epsilon / 4,
                                                          steps=args.pgd_steps, share=share, bounds=PIXEL_RANGE)}
    schedule = Schedule(epochs=2 if device.type == "cuda" else 1, batch_size=a.batch_size,
                        eval_batch_size=a.eval_batch_size)
    print(f"{args.images} images, batch size {a.batch_size}, epsilon {a.epsilon} ([0, 1] units), on {device.type}, "
          f"threads {torch.get_num_threads()}")

    def run(batch_loss, static_steps=None):
        """(images/s, final weights) of one epoch; on a GPU of the second of two (the first captures)."""
        model = to_device(model_from_params(), device)
        optimizer = graph_safe_adam(model.parameters(), a.lr, device)
        seconds, start = [], time.perf_counter()
        for _ in train_epochs(model, train, test, schedule, optimizer, seed=0, batch_loss=batch_loss,
                              static_steps=static_steps):  # a row: the epoch has synced
            seconds.append(time.perf_counter() - start)
            start = time.perf_counter()
        return args.images / seconds[-1], list(model.state_dict().values())

    plain = None
    for name, batch_loss in variants.items():
        per_s, weights = run(batch_loss)
        plain = plain or per_s
        print(f"{name:28s} {per_s:8.0f} images/s   cost {plain / per_s:4.1f}x plain training", flush=True)
    if device.type == "cuda":
        eager, eager_weights = run(batch_loss, static_steps=False)
        same = all(torch.equal(w, e) for w, e in zip(weights, eager_weights))
        print(f"{name + ', eager':28s} {eager:8.0f} images/s   the graph is {per_s / eager:.1f}x faster; "
              f"same weights bit for bit: {same}", flush=True)


if __name__ == "__main__":
    main()
