"""Iterative sign-gradient adversarial attacks (seed section 4), batched, with per-image early stopping.

Untargeted: x <- x + step_size * sign(grad_x CE(model(x), true label)) until the prediction changes.
Targeted:   x <- x - step_size * sign(grad_x CE(model(x), target)) until the prediction is the target.
After every step x is clipped to the pixel bounds and, when epsilon is given, to the L-inf ball of
radius epsilon around the original. An image stops changing at the step it succeeds.
"""
import torch
import torch.nn.functional as F

from stages.lib.data import NUM_CLASSES

KINDS = ("untargeted", "targeted")


def random_targets(labels, generator):
    """A uniformly random target label per image, never its true label."""
    offsets = torch.randint(1, NUM_CLASSES, labels.shape, generator=generator)
    return (labels.cpu() + offsets) % NUM_CLASSES


def sign_gradient_attack(model, images, labels, *, targets=None, step_size, max_steps, bounds,
                         epsilon=None, batch_size=128, early_stop=True):
    """Attack `images` (never modified) in batches; returns (adversarial, success, steps).

    steps[i] is the number of updates after which image i succeeded (max_steps where it never did).
    With early_stop=False every image takes max_steps updates (for benchmarks), steps is max_steps
    and success is judged on the final image. The model's parameters receive no gradients.
    """
    model.eval()
    results = [_attack_batch(model, images[s:s + batch_size], labels[s:s + batch_size],
                             None if targets is None else targets[s:s + batch_size],
                             step_size, max_steps, bounds, epsilon, early_stop)
               for s in range(0, len(images), batch_size)]
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
