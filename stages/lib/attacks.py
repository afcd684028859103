"""Sign-gradient adversarial attacks on one batched core (seed section 4, the defences and the
robustness stage).

Untargeted: x <- x + step_size * sign(grad_x CE(model(x), true label)) until the prediction changes.
Targeted:   x <- x - step_size * sign(grad_x CE(model(x), target)) until the prediction is the target.
After every step x is clipped to the pixel bounds and, when epsilon is given, to the L-inf ball of
radius epsilon around the original. With early stopping an image stops at the step it succeeds.

The seed's attack, FGSM (one step of size epsilon) and PGD-k (Madry et al.: a uniform random start in
the ball, k steps, R restarts with the worst case kept per image) are all `sign_gradient_attack` with
other arguments. It keeps its working batch full: an attempt that succeeds or runs out of steps leaves
the batch and the next attempt (another image, or a restart) takes its row, so no step runs on a
shrinking batch. Adversarial training's per-batch PGD is `batch_pgd`: every image takes every step, so it
runs the same tensor operations whatever the batch, with no host sync (a GPU captures it as a graph).
"""
import itertools
import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from tqdm import tqdm

from stages.lib.data import NUM_CLASSES
from stages.lib.models import frozen

NOISE_SEED_STRIDE = 1_000_003  # attempt j's random start is drawn from seed * stride + j
MASK_32 = 0xFFFFFFFF


def random_targets(labels, generator):
    """A uniformly random target label per image, never its true label."""
    offsets = torch.randint(1, NUM_CLASSES, labels.shape, generator=generator)
    return (labels.cpu() + offsets) % NUM_CLASSES


def perturbation_norms(originals, adversarial):
    """Per-image L-inf and L2 norms of the perturbation."""
    delta = (adversarial - originals).flatten(1)
    return delta.abs().amax(1), delta.norm(dim=1)


def fgsm(model, images, labels, epsilon, *, bounds, batch_size=256, desc=None):
    """FGSM: one step of size epsilon (an image already misclassified counts as fooled)."""
    return sign_gradient_attack(model, images, labels, step_size=epsilon, max_steps=1, epsilon=epsilon,
                                bounds=bounds, batch_size=batch_size, desc=desc)


def pgd(model, images, labels, epsilon, *, steps, step_size, restarts=1, bounds, batch_size=256, seed=0,
        desc=None):
    """PGD-k with a uniform random start in the epsilon ball and `restarts` attempts per image; an image
    counts as fooled when any step of any attempt misclassifies it (the worst case over restarts)."""
    return sign_gradient_attack(model, images, labels, step_size=step_size, max_steps=steps, epsilon=epsilon,
                                bounds=bounds, batch_size=batch_size, random_start=True, restarts=restarts,
                                seed=seed, desc=desc)


@dataclass
class Attempts:
    """The working batch: one row per attempt in flight, all tensors of equal length."""
    image: torch.Tensor    # which image the row attacks (an index into the attacked images)
    attempt: torch.Tensor  # which attempt at that image: 0 first, 1.. restarts
    x: torch.Tensor        # the current adversarial candidate
    lower: torch.Tensor    # the box x stays in: the pixel bounds and the epsilon ball around the original
    upper: torch.Tensor
    label: torch.Tensor    # the true label
    goal: torch.Tensor     # the label whose loss is ascended (untargeted: the true one) or descended (target)
    steps: torch.Tensor    # updates taken so far

    def __len__(self):
        return len(self.image)

    def rows(self, keep):
        """The attempts at `keep` (a mask or indices)."""
        return Attempts(*(getattr(self, f.name)[keep] for f in fields(self)))

    def put(self, rows, fresh):
        """Fresh attempts into the rows `rows`."""
        for f in fields(self):
            getattr(self, f.name)[rows] = getattr(fresh, f.name)


def attempt_order(n, restarts, success):
    """(image, attempt) pairs in the order they start: every image's first attempt, then round after
    round of restarts for the images that no attempt has fooled by the time the restart is due."""
    for attempt in range(restarts):
        for image in range(n):
            if attempt == 0 or not success[image]:
                yield image, attempt


def sign_gradient_attack(model, images, labels, *, targets=None, step_size, max_steps, bounds, epsilon=None,
                         batch_size=128, early_stop=True, random_start=False, restarts=1, margin=0.0, seed=0,
                         desc=None):
    """Attack `images` (never modified); returns (adversarial, success, steps), one row per image.

    steps[i] is the number of updates after which image i succeeded (max_steps where it never did).
    Success means misclassified (untargeted) or classified as the target, with the deciding logit ahead
    of every other by at least `margin`. With early_stop=False every attempt takes max_steps updates and
    is judged on its final image. With restarts R > 1 an image that no attempt has fooled yet is attacked
    again from a new random start (random_start=True; noise drawn per image and attempt from `seed`);
    the kept image is the earliest successful attempt's, else the last attempt's, so results do not
    depend on batch_size. The model's parameters receive no gradients.
    """
    if epsilon == 0:
        max_steps = 0  # the ball is one point: nothing can move
    n, device = len(images), images.device
    adversarial = images.clone()
    success = torch.zeros(n, dtype=torch.bool, device=device)
    steps = torch.full((n,), max_steps, dtype=torch.int64, device=device)
    kept = torch.full((n,), -1, dtype=torch.int64, device=device)  # rank of the attempt kept per image
    goals = labels if targets is None else targets
    direction = 1.0 if targets is None else -1.0  # ascend the true label's loss, descend the target's
    order = attempt_order(n, restarts, success)

    def start(k):
        """Up to k new attempts, next in order."""
        pairs = list(itertools.islice(order, k))
        image = torch.tensor([i for i, _ in pairs], dtype=torch.int64, device=device)
        attempt = torch.tensor([a for _, a in pairs], dtype=torch.int64, device=device)
        originals = images[image]
        lower, upper = torch.full_like(originals, bounds[0]), torch.full_like(originals, bounds[1])
        if epsilon is not None:
            lower = torch.maximum(lower, originals - epsilon)
            upper = torch.minimum(upper, originals + epsilon)
        x = originals
        if random_start and epsilon and pairs:
            noise = torch.stack([torch.rand(originals.shape[1:], generator=torch.Generator().manual_seed(
                seed * NOISE_SEED_STRIDE + a * n + i)) for i, a in pairs]).to(device)
            x = torch.minimum(torch.maximum(originals + (2 * noise - 1) * epsilon, lower), upper)
        return Attempts(image, attempt, x, lower, upper, labels[image], goals[image], torch.zeros_like(image))

    batch = start(batch_size)
    with tqdm(total=n, desc=desc, unit="image", disable=None if desc else True, mininterval=1) as progress, \
            frozen(model):
        while len(batch):
            x = batch.x.detach().requires_grad_(True)
            logits = model(x)
            fooled = _fooled(logits.detach(), batch, targets is not None, margin)
            finished = batch.steps == max_steps
            if early_stop:
                finished |= fooled
            done = finished.nonzero().flatten()
            moving = len(done) < len(batch)  # else every attempt is finished: no step to take
            if moving:
                (grad,) = torch.autograd.grad(F.cross_entropy(logits, batch.goal, reduction="sum"), x)
            if len(done):
                # keep, per image, the finished attempt of the highest rank (two attempts of one image
                # may finish together, hence the scatter): any success outranks every failure, an
                # earlier success a later one, and a later failure an earlier one
                image, won, attempt = batch.image[done], fooled[done], batch.attempt[done]
                rank = torch.where(won, 2 * restarts - attempt, attempt)
                best = kept.clone().scatter_reduce_(0, image, rank, reduce="amax")
                chosen = (rank == best[image]) & (rank > kept[image])
                image, won, rows = image[chosen], won[chosen], done[chosen]
                adversarial[image] = x.detach()[rows]
                steps[image] = torch.where(won & early_stop, batch.steps[rows], max_steps)
                kept[image] = rank[chosen]
                success[image] |= won
                progress.update(int((kept >= restarts - 1).sum()) - progress.n)  # last attempt or a success
            if moving:
                with torch.no_grad():
                    stepped = x.detach() + direction * step_size * grad.sign()
                    batch.x = torch.minimum(torch.maximum(stepped, batch.lower), batch.upper)
                    batch.steps += 1
            if len(done):
                fresh = start(len(done))
                batch.put(done[:len(fresh)], fresh)
                if len(fresh) < len(done):  # no attempt left for these rows: the batch shrinks
                    keep = torch.ones(len(batch), dtype=torch.bool, device=device)
                    keep[done[len(fresh):]] = False
                    batch = batch.rows(keep)
    return adversarial, success, steps


def batch_pgd(model, images, labels, *, epsilon, step_size, steps, bounds, noise):
    """PGD on one batch as adversarial training runs it: a start at `noise` (uniform in [0, 1), one value
    per pixel) mapped into the epsilon ball, then `steps` sign-gradient steps of step_size ascending the
    true label's loss, each clipped to the ball and the pixel bounds; every image takes every step.
    epsilon and step_size may be 0-dim tensors. Returns the adversarial batch; the model's parameters
    receive no gradients."""
    lower = torch.clamp(images - epsilon, min=bounds[0])
    upper = torch.clamp(images + epsilon, max=bounds[1])
    x = torch.minimum(torch.maximum(images + (2 * noise - 1) * epsilon, lower), upper)
    with frozen(model):
        for _ in range(steps):
            x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(F.cross_entropy(model(x), labels, reduction="sum"), x)
            x = torch.minimum(torch.maximum(x.detach() + step_size * grad.sign(), lower), upper)
    return x.detach()


def uniform_noise(shape, seed, step, device):
    """Uniform floats in [0, 1) (24 random bits each), a pure function of (seed, step, element): no
    generator state, so the same numbers on every device and inside a CUDA graph, where `step` is a
    0-dim tensor on the device that the graph increments. Each element's 64-bit counter, step * size +
    index, is hashed twice with a 32-bit integer hash (Wellons' lowbias32 constructions, int64
    arithmetic that never overflows)."""
    size = math.prod(shape)
    counter = torch.as_tensor(step, dtype=torch.int64, device=device) * size + torch.arange(size, device=device)
    key = _hash_32(seed & MASK_32)  # a Python int: a graph may not copy from the host
    bits = _hash_32(_hash_32((counter & MASK_32) ^ key) ^ (counter >> 32))
    return ((bits >> 8).to(torch.float32) * 2.0 ** -24).view(shape)


def _hash_32(x):
    """A 32-bit integer hash of a Python int or an int64 tensor of values in [0, 2^32): xor-shift-multiply
    rounds whose multipliers are below 2^31, so no product leaves int64."""
    x = x ^ (x >> 16)
    x = (x * 0x21F0AAAD) & MASK_32
    x = x ^ (x >> 15)
    x = (x * 0x735A2D97) & MASK_32
    return x ^ (x >> 15)


def _fooled(logits, batch, targeted, margin):
    """Misclassified (untargeted) or the target (targeted), its logit ahead by >= margin."""
    predicted = logits.argmax(1)
    hit = predicted == batch.goal if targeted else predicted != batch.label
    if margin:
        goal_logit = logits.gather(1, batch.goal[:, None]).squeeze(1)
        others = logits.scatter(1, batch.goal[:, None], float("-inf")).amax(1)
        lead = goal_logit - others if targeted else others - goal_logit
        hit &= lead >= margin
    return hit
