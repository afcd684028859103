"""Problem 2's network: the batched 2-hidden-1 XOR network (one independent network per seed, stacked
on a leading axis), full-batch gradient descent on the four XOR points, and when it solves them."""
import torch
import torch.nn.functional as F
from tqdm import tqdm

XOR_INPUTS = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=torch.float64)
XOR_TARGETS = torch.tensor([0, 1, 1, 0], dtype=torch.float64)
ACTIVATIONS = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu, "linear": lambda h: h}


def xor_init(seeds, hidden, init, scale):
    """Parameters of one 2-hidden-1 network per seed, stacked on a leading axis.

    init 'normal': N(0, scale²); 'uniform': U(-scale, scale); 'xavier': Glorot-uniform times scale.
    Each seed's draw depends on that seed alone, so a network is the same in any batch of seeds.
    """
    shapes = {"w1": (2, hidden), "b1": (hidden,), "w2": (hidden, 1), "b2": (1,)}
    params = {name: [] for name in shapes}
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        for name, shape in shapes.items():
            if init == "normal":
                t = torch.randn(shape, generator=generator, dtype=torch.float64) * scale
            else:
                bound = scale if init == "uniform" else scale * (6 / (shape[0] + shape[-1])) ** 0.5
                t = (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound
            params[name].append(t)
    return {name: torch.stack(ts) for name, ts in params.items()}


def xor_hidden(params, x, activation):
    """Hidden features (seeds x points x hidden) of inputs x (points x 2)."""
    return ACTIVATIONS[activation](torch.einsum("pi,sih->sph", x, params["w1"]) + params["b1"][:, None, :])


def xor_logits(params, x, activation):
    """Output logits (seeds x points); the probability is their sigmoid."""
    h = xor_hidden(params, x, activation)
    return (h @ params["w2"]).squeeze(-1) + params["b2"]


def train_xor(params, activation, lr, epochs, snapshot_epochs=(), desc=None):
    """Plain gradient descent on the four XOR points for every network in the batch at once.

    Summing the per-network losses leaves each network's gradient its own, so the batch is exactly
    len(seeds) independent runs. Row e of the history is the state after e updates (e = 0..epochs).
    Returns (history: loss and accuracy, epochs+1 x seeds; snapshots: {epoch: params}; final params).
    """
    params = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    losses, accuracies, snapshots = [], [], {}
    for epoch in tqdm(range(epochs + 1), desc=desc, disable=None if desc else True, mininterval=1):
        if epoch in snapshot_epochs:
            snapshots[epoch] = {k: v.detach().clone() for k, v in params.items()}
        logits = xor_logits(params, XOR_INPUTS, activation)
        loss = F.binary_cross_entropy_with_logits(
            logits, XOR_TARGETS.expand_as(logits), reduction="none").mean(dim=1)
        losses.append(loss.detach())
        accuracies.append(((logits.detach() > 0).double() == XOR_TARGETS).double().mean(dim=1))
        if epoch == epochs:
            break
        grads = torch.autograd.grad(loss.sum(), list(params.values()))
        with torch.no_grad():
            for p, g in zip(params.values(), grads):
                p -= lr * g
    history = {"loss": torch.stack(losses), "accuracy": torch.stack(accuracies)}
    return history, snapshots, {k: v.detach() for k, v in params.items()}


def first_solved_epoch(accuracy):
    """First epoch (row) with all four points correct, per network; None where never."""
    solved = accuracy == 1.0
    first = solved.double().argmax(dim=0)
    return [int(f) if s else None for f, s in zip(first.tolist(), solved.any(dim=0).tolist())]
