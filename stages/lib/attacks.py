"""Sign-gradient adversarial attacks on one batched core (seed section 4, and the robustness stage).

Untargeted: x <- x + step_size * sign(grad_x CE(model(x), true label)) until the prediction changes.
Targeted:   x <- x - step_size * sign(grad_x CE(model(x), target)) until the prediction is the target.
After every step x is clipped to the pixel bounds and, when epsilon is given, to the L-inf ball of
radius epsilon around the original. With early stopping an image stops at the step it succeeds.

The seed's attack, FGSM (one step of size epsilon) and PGD-k (Madry et al.: a uniform random start in
the ball, k steps, R restarts with the worst case kept per image) are all `sign_gradient_attack` with
other arguments. It keeps its working batch full: an image that succeeds or runs out of steps leaves
the batch and the next image (or restart) takes its slot, so no step runs on a shrinking batch.
"""
import torch
import torch.nn.functional as F
from tqdm import tqdm

from stages.lib.cli import StageError
from stages.lib.data import NUM_CLASSES
from stages.lib.io import load_tensors
from stages.lib.models import predict

KINDS = ("untargeted", "targeted")


def random_targets(labels, generator):
    """A uniformly random target label per image, never its true label."""
    offsets = torch.randint(1, NUM_CLASSES, labels.shape, generator=generator)
    return (labels.cpu() + offsets) % NUM_CLASSES


def fgsm(model, images, labels, epsilon, *, bounds, batch_size=256, desc=None):
    """FGSM: one step of size epsilon (an image already misclassified counts as fooled)."""
    return sign_gradient_attack(model, images, labels, step_size=epsilon, max_steps=1, epsilon=epsilon,
                                bounds=bounds, batch_size=batch_size, desc=desc)


def pgd(model, images, labels, epsilon, *, steps, step_size, restarts=1, bounds, batch_size=256, seed=0,
        desc=None):
    """PGD-k with a uniform random start in the epsilon ball and `restarts` tries per image; an image
    counts as fooled when any step of any try misclassifies it (the worst case over restarts)."""
    return sign_gradient_attack(model, images, labels, step_size=step_size, max_steps=steps, epsilon=epsilon,
                                bounds=bounds, batch_size=batch_size, random_start=True, restarts=restarts,
                                seed=seed, desc=desc)


def sign_gradient_attack(model, images, labels, *, targets=None, step_size, max_steps, bounds, epsilon=None,
                         batch_size=128, early_stop=True, random_start=False, restarts=1, margin=0.0, seed=0,
                         desc=None):
    """Attack `images` (never modified); returns (adversarial, success, steps), one row per image.

    steps[i] is the number of updates after which image i succeeded (max_steps where it never did).
    Success means misclassified (untargeted) or classified as the target, with the deciding logit ahead
    of every other by at least `margin`. With early_stop=False every try takes max_steps updates and is
    judged on its final image. With restarts R > 1 an image that no try has fooled yet is tried again
    from a new random start (random_start=True; noise drawn per image and try from `seed`); the kept
    image is the earliest successful try's, else the last try's, so results do not depend on batch_size.
    The model's parameters receive no gradients.
    """
    if epsilon == 0:
        max_steps = 0  # the ball is one point: nothing can move
    n, device = len(images), images.device
    adversarial = images.clone()
    success = torch.zeros(n, dtype=torch.bool, device=device)
    steps = torch.full((n,), max_steps, dtype=torch.int64, device=device)
    kept = torch.full((n,), -1, dtype=torch.int64, device=device)  # priority of the try whose result is kept
    goals = labels if targets is None else targets
    direction = 1.0 if targets is None else -1.0  # ascend the true label's loss, descend the target's
    queue = iter(range(n * restarts))  # try r of image i is job r * n + i: every first try comes first
    slots = _Slots(images, labels, goals, targets is not None, bounds, epsilon, random_start, seed)
    slots.fill(queue, batch_size, success)
    progress = tqdm(total=n, desc=desc, unit="image", disable=None if desc else True, mininterval=1)
    requires_grad = [p.requires_grad for p in model.parameters()]
    model.eval().requires_grad_(False)
    try:
        while len(slots.image):
            x = slots.x.detach().requires_grad_(True)
            logits = model(x)
            fooled = slots.fooled(logits.detach(), margin)
            finished = slots.count == max_steps
            if early_stop:
                finished |= fooled
            done = finished.nonzero().flatten()
            moving = len(done) < len(finished)  # else every slot is finished: no step to take
            if moving:
                (grad,) = torch.autograd.grad(F.cross_entropy(logits, slots.goal, reduction="sum"), x)
            if len(done):
                # per image the earliest successful try, else the last try (also when two tries of an
                # image finish at once): the same result for any batch size
                image, won = slots.image[done], fooled[done]
                priority = torch.where(won, 2 * n * restarts - slots.job[done], slots.job[done])
                best = kept.clone().scatter_reduce_(0, image, priority, reduce="amax")
                chosen = (priority == best[image]) & (priority > kept[image])
                image, won, chosen_slots = image[chosen], won[chosen], done[chosen]
                adversarial[image] = x.detach()[chosen_slots]
                steps[image] = torch.where(won & early_stop, slots.count[chosen_slots], max_steps)
                kept[image] = priority[chosen]
                success[image] |= won
                progress.update(int((kept >= (restarts - 1) * n).sum()) - progress.n)
            if moving:
                with torch.no_grad():
                    stepped = x.detach() + direction * step_size * grad.sign()
                    slots.x = torch.minimum(torch.maximum(stepped, slots.lower), slots.upper)
                    slots.count += 1
            if len(done):
                slots.replace(done, queue, success)
    finally:
        for p, flag in zip(model.parameters(), requires_grad):
            p.requires_grad_(flag)
        progress.close()
    return adversarial, success, steps


class _Slots:
    """The working batch: per slot its image (and try), current x, box bounds, goal label and steps."""

    def __init__(self, images, labels, goals, targeted, bounds, epsilon, random_start, seed):
        self.images, self.labels, self.goals, self.targeted = images, labels, goals, targeted
        self.bounds, self.epsilon, self.random_start, self.seed = bounds, epsilon, random_start, seed
        empty = torch.zeros(0, dtype=torch.int64, device=images.device)
        self.image, self.job, self.count = empty, empty, empty
        self.x = self.lower = self.upper = images[:0]
        self.label = self.goal = empty

    def _next_jobs(self, queue, k, success):
        """Up to k jobs whose image no earlier try has fooled."""
        n, jobs = len(self.images), []
        for job in queue:
            if job < n or not success[job % n]:
                jobs.append(job)
                if len(jobs) == k:
                    break
        return jobs

    def _start(self, jobs):
        n = len(self.images)
        job = torch.tensor(jobs, dtype=torch.int64, device=self.images.device)
        image = job % n
        originals = self.images[image]
        low, high = self.bounds
        lower, upper = torch.full_like(originals, low), torch.full_like(originals, high)
        if self.epsilon is not None:
            lower = torch.maximum(lower, originals - self.epsilon)
            upper = torch.minimum(upper, originals + self.epsilon)
        x = originals
        if self.random_start and self.epsilon:
            noise = torch.stack([torch.rand(originals.shape[1:], generator=torch.Generator().manual_seed(
                self.seed * 1_000_003 + j)) for j in jobs]).to(originals.device)
            x = torch.minimum(torch.maximum(originals + (2 * noise - 1) * self.epsilon, lower), upper)
        return {"image": image, "job": job, "x": x, "lower": lower, "upper": upper,
                "label": self.labels[image], "goal": self.goals[image],
                "count": torch.zeros(len(jobs), dtype=torch.int64, device=image.device)}

    FIELDS = ("image", "job", "x", "lower", "upper", "label", "goal", "count")

    def fill(self, queue, batch_size, success):
        jobs = self._next_jobs(queue, batch_size, success)
        if jobs:
            for name, value in self._start(jobs).items():
                setattr(self, name, value)

    def replace(self, done, queue, success):
        """New jobs into the finished slots; slots left without one leave the batch."""
        jobs = self._next_jobs(queue, len(done), success)
        if jobs:
            fresh, into = self._start(jobs), done[:len(jobs)]
            for name in self.FIELDS:
                getattr(self, name)[into] = fresh[name]
        if len(jobs) < len(done):
            keep = torch.ones(len(self.image), dtype=torch.bool, device=self.image.device)
            keep[done[len(jobs):]] = False
            for name in self.FIELDS:
                setattr(self, name, getattr(self, name)[keep])

    def fooled(self, logits, margin):
        """Misclassified (untargeted) or the target (targeted), its logit ahead by >= margin."""
        predicted = logits.argmax(1)
        hit = predicted == self.goal if self.targeted else predicted != self.label
        if margin:
            goal_logit = logits.gather(1, self.goal[:, None]).squeeze(1)
            others = logits.scatter(1, self.goal[:, None], float("-inf")).amax(1)
            lead = goal_logit - others if self.targeted else others - goal_logit
            hit &= lead >= margin
        return hit


def adversarial_copies(model, images, labels, *, share, kind, seed, step_size, max_steps, epsilon, bounds,
                       batch_size, desc=None):
    """Adversarial versions, made on `model` by the seed's attack, of a seeded `share` of `images`
    (those the model classifies correctly and the attack fools); returns (images, their true labels)."""
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(labels), generator=generator)[:round(share * len(labels))].to(labels.device)
    x, y = images[chosen], labels[chosen]
    correct = predict(model, x, batch_size) == y
    x, y = x[correct], y[correct]
    targets = random_targets(y, generator).to(y.device) if kind == "targeted" else None
    adversarial, success, _ = sign_gradient_attack(model, x, y, targets=targets, step_size=step_size,
                                                   max_steps=max_steps, epsilon=epsilon, bounds=bounds,
                                                   batch_size=batch_size, desc=desc)
    return adversarial[success], y[success]


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
