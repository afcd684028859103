"""What the defended models need beyond plain training: adversarial examples made on the fly for each
batch (adversarial training) and the guard against catastrophic overfitting. The retrain defence's
adversarial copies come from attacks.adversarial_copies."""
from stages.lib.attacks import pgd, sign_gradient_attack


def fgsm_adversary(epsilon, step_size, steps, bounds):
    """The adversarial examples of adversarial training, made on the fly for each batch: a uniform
    random start in the epsilon ball, then `steps` sign-gradient steps of step_size (steps=1: the fast
    FGSM of Wong et al. 2020; more: PGD of Madry et al. 2018), never stopping early."""
    def adversary(model, x, y, step):
        adversarial, _, _ = sign_gradient_attack(model, x, y, step_size=step_size, max_steps=steps,
                                                 epsilon=epsilon, bounds=bounds, batch_size=len(x),
                                                 early_stop=False, random_start=True, seed=step)
        return adversarial
    return adversary


class CollapseGuard:
    """Catastrophic-overfitting guard: after every epoch, PGD accuracy on held-out images; when it falls
    below its best minus max_drop, training stops and the best epoch's weights are put back."""

    def __init__(self, images, labels, *, epsilon, steps, max_drop, bounds, batch_size):
        self.images, self.labels = images, labels
        self.attack = {"epsilon": epsilon, "steps": steps, "step_size": epsilon / 4, "bounds": bounds,
                       "batch_size": batch_size}
        self.max_drop = max_drop
        self.best = {"accuracy": -1.0, "epoch": 0, "state": None}
        self.collapsed_at = None

    def __call__(self, model, epoch):
        _, fooled, _ = pgd(model, self.images, self.labels, **self.attack)
        accuracy = (~fooled).double().mean().item()
        if accuracy > self.best["accuracy"]:
            self.best = {"accuracy": accuracy, "epoch": epoch,
                         "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        elif accuracy < self.best["accuracy"] - self.max_drop:
            self.collapsed_at = epoch
            model.load_state_dict(self.best["state"])
        return {"guard_pgd_acc": accuracy}, self.collapsed_at is not None

    def summary(self):
        return {"collapsed_at_epoch": self.collapsed_at, "kept_epoch": self.best["epoch"] if self.collapsed_at else None}
