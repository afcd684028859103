"""Problem 1: a single sigmoid neuron S(wx + b) over a (w, b) grid; L2 and cross-entropy losses and
their analytic gradients (the seed's formulas), checked against autograd. All in float64."""
import torch
import torch.nn.functional as F

QUANTITIES = ("sigmoid", "l2", "l2_grad_w", "l2_grad_b", "ce", "ce_grad_w", "ce_grad_b")
SEED_FIGURE = ("sigmoid", "l2", "l2_grad_w", "ce", "ce_grad_w")  # the seed's five plots
TITLES = {
    "sigmoid": "S(wx + b)",
    "l2": "L2 loss (S - y)²",
    "l2_grad_w": "∂L2/∂w",
    "l2_grad_b": "∂L2/∂b",
    "ce": "cross-entropy loss",
    "ce_grad_w": "∂CE/∂w",
    "ce_grad_b": "∂CE/∂b",
}


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


def observations(surfaces, autograd, flat_threshold):
    """The seed's observations as numbers."""
    flat = {f"flat_fraction_{k}": (surfaces[k].abs() < flat_threshold).double().mean().item()
            for k in ("l2_grad_w", "ce_grad_w", "l2_grad_b", "ce_grad_b")}
    return {
        "grid_points": surfaces["l2"].numel(),
        "ce_gt_l2_fraction": (surfaces["ce"] > surfaces["l2"]).double().mean().item(),
        "max_abs_ce_grad_w": surfaces["ce_grad_w"].abs().max().item(),
        "max_abs_l2_grad_w": surfaces["l2_grad_w"].abs().max().item(),
        "mean_abs_ce_grad_w": surfaces["ce_grad_w"].abs().mean().item(),
        "mean_abs_l2_grad_w": surfaces["l2_grad_w"].abs().mean().item(),
        **flat,
        "max_analytic_autograd_diff": max((surfaces[k] - autograd[k]).abs().max().item() for k in autograd),
    }
