"""Problem 1: a single sigmoid neuron S(wx + b) over a (w, b) grid; L2 and cross-entropy losses and
their analytic gradients (the seed's formulas), checked against autograd; and the same neuron trained by
gradient descent with each loss. All in float64."""
import math

import torch
import torch.nn.functional as F

QUANTITIES = ("sigmoid", "l2", "l2_grad_w", "l2_grad_b", "ce", "ce_grad_w", "ce_grad_b")
SEED_FIGURE = ("sigmoid", "l2", "l2_grad_w", "ce", "ce_grad_w")  # the seed's five plots
LABEL_FIGURE = ("l2", "l2_grad_w", "ce", "ce_grad_w")            # at a class label (S is the same surface)
TITLES = {
    "sigmoid": "S(wx + b)",
    "l2": "L2 loss (S - y)²",
    "l2_grad_w": "∂L2/∂w",
    "l2_grad_b": "∂L2/∂b",
    "ce": "cross-entropy loss",
    "ce_grad_w": "∂CE/∂w",
    "ce_grad_b": "∂CE/∂b",
}
LOSSES = ("l2", "ce")


def axis(low, high, step):
    """Points low, low + step, ..., high (high included when it lies on the step)."""
    count = int(round((high - low) / step)) + 1
    if low + (count - 1) * step > high + 1e-9 * step:
        count -= 1
    return low + step * torch.arange(count, dtype=torch.float64)


def grid(w_range, b_range, step):
    """(W, B): w along columns, b along rows."""
    w, b = axis(*w_range, step), axis(*b_range, step)
    B, W = torch.meshgrid(b, w, indexing="ij")
    return W, B


def analytic(W, B, x, y):
    """The surfaces of QUANTITIES with the seed's closed-form gradients."""
    z = W * x + B
    s = torch.sigmoid(z)
    l2_grad_b = 2 * (s - y) * s * (1 - s)
    ce_grad_b = s - y
    return {
        "sigmoid": s,
        "l2": (s - y) ** 2,
        "l2_grad_w": l2_grad_b * x,
        "l2_grad_b": l2_grad_b,
        # -(y log S + (1 - y) log(1 - S)) written with log-sigmoid, exact where S rounds to 0 or 1
        "ce": -(y * F.logsigmoid(z) + (1 - y) * F.logsigmoid(-z)),
        "ce_grad_w": ce_grad_b * x,
        "ce_grad_b": ce_grad_b,
    }


def autograd_gradients(W, B, x, y):
    """The same four gradients by autograd (each grid point is an independent neuron)."""
    w = W.clone().requires_grad_(True)
    b = B.clone().requires_grad_(True)
    s = torch.sigmoid(w * x + b)
    l2 = ((s - y) ** 2).sum()
    ce = F.binary_cross_entropy(s, torch.full_like(s, y), reduction="sum")
    l2_w, l2_b = torch.autograd.grad(l2, (w, b), retain_graph=True)
    ce_w, ce_b = torch.autograd.grad(ce, (w, b))
    return {"l2_grad_w": l2_w, "l2_grad_b": l2_b, "ce_grad_w": ce_w, "ce_grad_b": ce_b}


def observations(surfaces, autograd, y, flat_threshold, wrong_by):
    """The seed's observations as numbers, at target y.

    A plateau is where a gradient is flat (|∂L/∂w| < flat_threshold) although the output misses the
    target by at least wrong_by: the flat ends the seed means. (Both gradients are also zero on the line
    S = y, the losses' minimum, which is not a plateau.) The wrong end is the grid point whose output
    misses y the most: the neuron at its most confidently wrong."""
    miss = (surfaces["sigmoid"] - y).abs()
    wrong = miss >= wrong_by
    wrong_end = torch.argmax(miss)
    return {
        "grid_points": surfaces["l2"].numel(),
        "ce_gt_l2_fraction": (surfaces["ce"] > surfaces["l2"]).double().mean().item(),
        "max_abs_ce_grad_w": surfaces["ce_grad_w"].abs().max().item(),
        "max_abs_l2_grad_w": surfaces["l2_grad_w"].abs().max().item(),
        "mean_abs_ce_grad_w": surfaces["ce_grad_w"].abs().mean().item(),
        "mean_abs_l2_grad_w": surfaces["l2_grad_w"].abs().mean().item(),
        "wrong_fraction": wrong.double().mean().item(),
        **{f"plateau_fraction_{loss}_grad_w": ((surfaces[f"{loss}_grad_w"].abs() < flat_threshold) & wrong)
           .double().mean().item() for loss in LOSSES},
        "wrong_end_output": surfaces["sigmoid"].flatten()[wrong_end].item(),
        **{f"wrong_end_abs_{loss}_grad_w": surfaces[f"{loss}_grad_w"].flatten()[wrong_end].abs().item()
           for loss in LOSSES},
        "max_analytic_autograd_diff": max((surfaces[k] - autograd[k]).abs().max().item() for k in autograd),
    }


def gradient_magnitudes(z, x, y):
    """|∂L/∂w| of each loss against the pre-activation z = wx + b (a 1-D tensor): {loss: tensor}."""
    s = torch.sigmoid(z)
    return {"l2": (2 * (s - y) * s * (1 - s) * x).abs(), "ce": ((s - y) * x).abs()}


def sigmoid(z):
    """S(z) in float64 without overflow for any finite z."""
    if z >= 0:
        return 1 / (1 + math.exp(-z))
    return math.exp(z) / (1 + math.exp(z))


def descend(loss, x, y, start, lr, max_steps, target_error):
    """The neuron S(wx + b) trained on the one example (x, y) by plain gradient descent on `loss`
    ("l2" or "ce") from start = (w, b): (errors |S - y| after 0..steps steps, the first step at which
    |S - y| <= target_error or None). It runs max_steps steps, or stops once the target is reached."""
    w, b = start
    errors = []
    for step in range(max_steps + 1):
        s = sigmoid(w * x + b)
        errors.append(abs(s - y))
        if errors[-1] <= target_error:
            return errors, step
        grad_b = 2 * (s - y) * s * (1 - s) if loss == "l2" else s - y
        w, b = w - lr * grad_b * x, b - lr * grad_b
    return errors, None
