"""Iterative sign-gradient adversarial attacks (seed section 4), batched, with per-image early stopping.

Untargeted: x <- x + step_size * sign(grad_x CE(model(x), true label)) until the prediction changes.
Targeted:   x <- x - step_size * sign(grad_x CE(model(x), target)) until the prediction is the target.
After every step x is clipped to the pixel bounds and, when epsilon is given, to the L-inf ball of
radius epsilon around the original. An image stops changing at the step it succeeds.
"""
import torch
import torch.nn.functional as F
from tqdm import tqdm

from stages.lib.cli import StageError
from stages.lib.data import NUM_CLASSES
from stages.lib.io import load_tensors

KINDS = ("untargeted", "targeted")


def random_targets(labels, generator):
    """A uniformly random target label per image, never its true label."""
    offsets = torch.randint(1, NUM_CLASSES, labels.shape, generator=generator)
    return (labels.cpu() + offsets) % NUM_CLASSES


def sign_gradient_attack(model, images, labels, *, targets=None, step_size, max_steps, bounds,
                         epsilon=None, batch_size=128, early_stop=True, desc=None):
    """Attack `images` (never modified) in batches; returns (adversarial, success, steps).

    steps[i] is the number of updates after which image i succeeded (max_steps where it never did).
    With early_stop=False every image takes max_steps updates (for benchmarks), steps is max_steps
    and success is judged on the final image. The model's parameters receive no gradients.
    """
    model.eval()
    starts = tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", disable=None if desc else True)
    results = [_attack_batch(model, images[s:s + batch_size], labels[s:s + batch_size],
                             None if targets is None else targets[s:s + batch_size],
                             step_size, max_steps, bounds, epsilon, early_stop)
               for s in starts]
    if not results:
        device = images.device
        return (images.new_zeros((0, *images.shape[1:])), torch.zeros(0, dtype=torch.bool, device=device),
                torch.zeros(0, dtype=torch.int64, device=device))
    return tuple(torch.cat(parts) for parts in zip(*results))


def _attack_batch(model, originals, labels, targets, step_size, max_steps, bounds, epsilon, early_stop):
    low, high = bounds
    lower = torch.full_like(originals, low)
    upper = torch.full_like(originals, high)
    if epsilon is not None:
        lower = torch.maximum(lower, originals - epsilon)
        upper = torch.minimum(upper, originals + epsilon)
    goal = labels if targets is None else targets
    direction = 1.0 if targets is None else -1.0  # ascend the true label's loss, descend the target's
    x = originals.clone()
    success = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    steps = torch.full((len(x),), max_steps, dtype=torch.int64, device=x.device)
    active = torch.arange(len(x), device=x.device)
    for step in range(max_steps + 1):
        current = x[active].requires_grad_(True)
        logits = model(current)
        predicted = logits.argmax(1)
        done = predicted != labels[active] if targets is None else predicted == targets[active]
        if early_stop:
            steps[active[done]] = step
            success[active[done]] = True
        if step == max_steps:
            success[active] = done
            break
        keep = ~done if early_stop else torch.ones_like(done)
        if not keep.any():
            break
        loss = F.cross_entropy(logits[keep], goal[active[keep]], reduction="sum")
        (grad,) = torch.autograd.grad(loss, current)
        index = active[keep]
        stepped = current.detach()[keep] + direction * step_size * grad[keep].sign()
        x[index] = torch.minimum(torch.maximum(stepped, lower[index]), upper[index])
        active = index
    return x.detach(), success, steps


def perturbation_norms(originals, adversarial):
    """Per-image L-inf and L2 norms of the perturbation."""
    delta = (adversarial - originals).flatten(1)
    return delta.abs().amax(1), delta.norm(dim=1)


ADVERSARIAL_FORMAT = {"images": torch.float32, "labels": torch.int64, "targets": torch.int64,
                      "success": torch.bool, "steps": torch.int64, "indices": torch.int64}


def save_adversarial(path, *, images, labels, targets, success, steps, indices):
    """An attack's result: adversarial images (N x 1 x 28 x 28), true labels, targets (-1 where
    untargeted), success flags, steps used and the attacked test-set indices."""
    torch.save({"images": images.cpu(), "labels": labels.cpu(), "targets": targets.cpu(),
                "success": success.cpu(), "steps": steps.cpu(), "indices": indices.cpu()}, path)


def load_adversarial(path, n_test, bounds):
    """An attack's result as save_adversarial wrote it, checked for consistency: equal lengths, images
    of the right shape inside `bounds`, digit labels, targets -1 or a digit other than the label, and
    indices into a test set of n_test images. Anything else is one StageError naming the file."""
    tensors = load_tensors(path, ADVERSARIAL_FORMAT)
    n = len(tensors["labels"])
    images, labels, targets = tensors["images"], tensors["labels"], tensors["targets"]

    def check(ok, what):
        if not ok:
            raise StageError(f"{path}: {what}; rerun the attack stage that writes it")

    check(all(t.dim() == 1 and len(t) == n for k, t in tensors.items() if k != "images"),
          "labels, targets, success, steps and indices must be N-long vectors of one length")
    check(images.shape == (n, 1, 28, 28), f"expected {n} x 1 x 28 x 28 images, got {tuple(images.shape)}")
    check(bool(torch.isfinite(images).all()) and (n == 0 or (images.min() >= bounds[0] and images.max() <= bounds[1])),
          f"images must be finite and within {bounds}")
    check(bool(((labels >= 0) & (labels < NUM_CLASSES)).all()), "labels must be digits 0-9")
    check(bool((((targets >= 0) & (targets < NUM_CLASSES) & (targets != labels)) | (targets == -1)).all()),
          "targets must be -1 or a digit other than the label")
    check(bool(((tensors["indices"] >= 0) & (tensors["indices"] < n_test)).all()),
          f"indices must point into the {n_test} test images")
    check(bool((tensors["steps"] >= 0).all()), "steps must be >= 0")
    return tensors
