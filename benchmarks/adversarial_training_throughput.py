"""Adversarial-training throughput: images/s of one epoch of plain training, of the fast FGSM training
(random start, one step; the adversarial_training default) and of PGD-k training, on the same images
with the CNN and settings of params.yaml, and each one's cost relative to plain training.

    python benchmarks/adversarial_training_throughput.py [--images 8192] [--pgd-steps 10]
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
from stages.lib.training import Schedule, clean_loss, train_epochs  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8192)
    parser.add_argument("--pgd-steps", type=int, default=10)
    args = parser.parse_args()
    a = params().adversarial_training
    generator = torch.Generator().manual_seed(0)
    images = to_model_input(torch.randint(0, 256, (args.images, 28, 28), generator=generator, dtype=torch.uint8))
    labels = torch.randint(0, 10, (args.images,), generator=generator)
    test = (images[:a.eval_batch_size], labels[:a.eval_batch_size])
    share = a.adversarial_share
    variants = {"plain": clean_loss,
                "fgsm (random start, 1 step)": adversarial_loss(epsilon=a.epsilon, step_size=a.step_size, steps=1,
                                                                share=share, bounds=PIXEL_RANGE),
                f"pgd-{args.pgd_steps}": adversarial_loss(epsilon=a.epsilon, step_size=a.epsilon / 4,
                                                          steps=args.pgd_steps, share=share, bounds=PIXEL_RANGE)}
    schedule = Schedule(epochs=1, batch_size=a.batch_size, eval_batch_size=a.eval_batch_size)
    print(f"{args.images} images, batch size {a.batch_size}, epsilon {a.epsilon} ([-1, 1] units), "
          f"threads {torch.get_num_threads()}")
    plain = None
    for name, batch_loss in variants.items():
        model = model_from_params()
        optimizer = torch.optim.Adam(model.parameters(), lr=a.lr)
        start = time.perf_counter()
        list(train_epochs(model, (images, labels), test, schedule, optimizer, seed=0, batch_loss=batch_loss))
        per_s = args.images / (time.perf_counter() - start)
        plain = plain or per_s
        print(f"{name:28s} {per_s:8.0f} images/s   cost {plain / per_s:4.1f}x plain training", flush=True)


if __name__ == "__main__":
    main()
