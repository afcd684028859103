"""The seed's two defences, built on the attack core.

Defence 1 (retrain): adversarial copies of training images, made by the seed's attack on the attacked
model, added to the training set with their true labels.
Defence 2 (adversarial training): a per-batch loss with an adversarial term, its examples made on the
fly for each batch, and a guard against catastrophic overfitting.
"""
import torch
import torch.nn.functional as F

from stages.lib.attacks import batch_pgd, pgd, random_targets, sign_gradient_attack, uniform_noise
from stages.lib.models import predict


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


def adversarial_loss(*, epsilon, step_size, steps, share, bounds, ramp_steps=0, seed=0):
    """The per-batch loss of adversarial training, (1 - share) CE(clean) + share CE(adversarial), for
    training.train_epochs. Its examples start uniformly at random in the epsilon ball (the noise a pure
    function of seed and the training step) and take `steps` sign-gradient steps of step_size, never
    stopping early (attacks.batch_pgd): steps=1 is the fast FGSM of Wong et al. 2020, more is PGD of Madry
    et al. 2018. Over the first ramp_steps training steps the budget (and the step size with it) rises
    linearly from 0 to epsilon. The logits returned (for the running accuracy) are the adversarial
    examples'. Every step runs the same tensor operations with no host sync: `step` may be a 0-dim tensor
    on the device, as it is when a GPU replays the training step as a CUDA graph."""
    def loss(model, x, y, step):
        step = torch.as_tensor(step, device=x.device)
        scale = ((step + 1) / ramp_steps).clamp(max=1.0) if ramp_steps else 1.0
        adversarial = batch_pgd(model, x, y, epsilon=scale * epsilon, step_size=scale * step_size, steps=steps,
                                bounds=bounds, noise=uniform_noise(x.shape, seed, step, x.device))
        model.train()
        logits = model(adversarial)
        value = F.cross_entropy(logits, y)
        if share < 1:
            value = share * value + (1 - share) * F.cross_entropy(model(x), y)
        return value, logits
    return loss


class CollapseGuard:
    """Catastrophic-overfitting guard: PGD accuracy on held-out images after every epoch. When it falls
    more than max_drop below its best, the run has collapsed: `check` puts the best epoch's weights
    back into the model and the caller stops training."""

    def __init__(self, images, labels, *, epsilon, steps, max_drop, bounds, batch_size):
        self.images, self.labels = images, labels
        self.epsilon, self.steps, self.max_drop = epsilon, steps, max_drop
        self.bounds, self.batch_size = bounds, batch_size
        self.best_accuracy, self.best_epoch, self.best_state = -1.0, 0, None
        self.collapsed_at = None

    def check(self, model, epoch):
        """The held-out PGD accuracy after `epoch`; on a collapse the model gets the best weights back."""
        _, fooled, _ = pgd(model, self.images, self.labels, self.epsilon, steps=self.steps,
                           step_size=self.epsilon / 4, bounds=self.bounds, batch_size=self.batch_size)
        accuracy = (~fooled).double().mean().item()
        if accuracy > self.best_accuracy:
            self.best_accuracy, self.best_epoch = accuracy, epoch
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif accuracy < self.best_accuracy - self.max_drop:
            self.collapsed_at = epoch
            model.load_state_dict(self.best_state)
        return accuracy

    def summary(self):
        return {"collapsed_at_epoch": self.collapsed_at,
                "kept_epoch": self.best_epoch if self.collapsed_at else None}
