"""Every figure of the pipeline. Each function draws and saves one file (PNG or GIF)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.animation import PillowWriter  # noqa: E402

from stages.lib.data import PIXEL_RANGE  # noqa: E402
from stages.lib.xor import XOR_INPUTS, XOR_TARGETS, xor_hidden, xor_logits  # noqa: E402

DPI = 110
POINT_COLORS = np.array(["tab:blue", "tab:red"])


def _save(fig, path):
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


# --- Problem 1 -------------------------------------------------------------------------------------

def _surface(ax, W, B, Z, title):
    ax.plot_surface(W.numpy(), B.numpy(), Z.numpy(), cmap="viridis", linewidth=0, antialiased=True)
    ax.set_xlabel("w")
    ax.set_ylabel("b")
    ax.set_title(title)


def surfaces_side_by_side(W, B, surfaces, names, titles, path):
    fig = plt.figure(figsize=(5 * len(names), 5))
    for i, name in enumerate(names):
        _surface(fig.add_subplot(1, len(names), i + 1, projection="3d"), W, B, surfaces[name], titles[name])
    _save(fig, path)


def gradient_magnitudes(z, magnitudes, x, label, path):
    """|∂L/∂w| of L2 and cross-entropy against z = wx + b at a class label, on a log axis: the side where
    the neuron is wrong shaded, and |x|, where |∂CE/∂w| tends there, dashed."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    wrong = (z < 0) if label == 1 else (z > 0)
    ax.axvspan(z[wrong].min().item(), z[wrong].max().item(), color="tab:red", alpha=0.08,
               label=f"wrong side (S on the far side of 0.5 from y = {label})")
    for loss, name in (("l2", "L2"), ("ce", "cross-entropy")):
        ax.plot(z.numpy(), magnitudes[loss].numpy(), label=f"|∂{name}/∂w|")
    ax.axhline(abs(x), color="k", linestyle="--", linewidth=1, label=f"|x| = {abs(x):g}")
    ax.set_yscale("log")
    ax.set_xlabel("z = wx + b")
    ax.set_ylabel("|∂L/∂w|")
    ax.set_title(f"gradient magnitude at the class label y = {label}, x = {x:g}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower center")
    _save(fig, path)


def descent_curves(errors, steps, target_error, path):
    """|S - y| over the gradient-descent steps of each loss (loss -> list of errors; loss -> the step that
    reached the target, or None), on log axes, with the target error dashed."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for loss, name in (("l2", "L2"), ("ce", "cross-entropy")):
        reached = f"target after {steps[loss]:,} steps" if steps[loss] is not None else "target not reached"
        ax.plot(np.arange(1, len(errors[loss]) + 1), errors[loss], label=f"trained with {name}: {reached}")
    ax.axhline(target_error, color="k", linestyle="--", linewidth=1, label=f"target |S - y| = {target_error:g}")
    ax.set_xscale("log")
    ax.set_xlabel("gradient-descent step + 1")
    ax.set_ylabel("|S - y|")
    ax.set_title("the same neuron from the same confidently wrong start")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


# --- Problem 2 -------------------------------------------------------------------------------------

def _probability_map(params, activation, resolution=101):
    axis = torch.linspace(-0.5, 1.5, resolution, dtype=torch.float64)
    x2, x1 = torch.meshgrid(axis, axis, indexing="ij")
    points = torch.stack([x1.flatten(), x2.flatten()], dim=1)
    prob = torch.sigmoid(xor_logits(params, points, activation))[0].view(resolution, resolution)
    return x1.numpy(), x2.numpy(), prob.numpy()


def _boundary_axes(ax, title):
    """What a decision-boundary panel keeps over the epochs: the four points, the square, the title."""
    ax.scatter(XOR_INPUTS[:, 0], XOR_INPUTS[:, 1], c=POINT_COLORS[XOR_TARGETS.long().numpy()],
               s=120, edgecolors="k", zorder=3)
    ax.set_xlim(-0.5, 1.5)
    ax.set_ylim(-0.5, 1.5)
    ax.set_aspect("equal")
    return ax.set_title(title)


def _draw_probability(ax, params, activation):
    """The network's probability map and its 0.5 contour (where it crosses 0.5); the artists drawn."""
    x1, x2, prob = _probability_map(params, activation)
    drawn = [ax.contourf(x1, x2, prob, levels=np.linspace(0, 1, 21), cmap="RdBu_r", vmin=0, vmax=1)]
    if prob.min() < 0.5 < prob.max():
        drawn.append(ax.contour(x1, x2, prob, levels=[0.5], colors="k", linewidths=2))
    return drawn


def xor_problem(path):
    """The seed's 2-D plot of the truth table: no line separates the two colours."""
    fig, ax = plt.subplots(figsize=(4, 4))
    for label in (0, 1):
        members = XOR_TARGETS == label
        ax.scatter(XOR_INPUTS[members, 0], XOR_INPUTS[members, 1], c=POINT_COLORS[label], s=150,
                   edgecolors="k", label=f"y = {label}")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title("XOR")
    ax.legend(loc="center")
    _save(fig, path)


def boundary_grid(snapshots, activation, path, title):
    """One panel per snapshot epoch: probability map, 0.5 contour, the four points."""
    epochs = sorted(snapshots)
    cols = min(4, len(epochs))
    rows = -(-len(epochs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(epochs):]:
        ax.axis("off")
    for ax, epoch in zip(axes.flat, epochs):
        _draw_probability(ax, snapshots[epoch], activation)
        _boundary_axes(ax, f"epoch {epoch}")
    fig.suptitle(title)
    _save(fig, path)


def boundary_animation(snapshots, activation, path, fps=8):
    """One GIF frame per snapshot epoch. The axes and the points are drawn once; each frame replaces the
    probability map and the title, and is drawn once (FuncAnimation would clear and draw each twice)."""
    fig, ax = plt.subplots(figsize=(4, 4))
    title = _boundary_axes(ax, "")
    writer, drawn = PillowWriter(fps=fps), []
    with writer.saving(fig, path, dpi=80):
        for epoch in sorted(snapshots):
            for artist in drawn:
                artist.remove()
            drawn = _draw_probability(ax, snapshots[epoch], activation)
            title.set_text(f"epoch {epoch}")
            writer.grab_frame()
    plt.close(fig)


def hidden_view(params, activation, path):
    """The four points in hidden space (h1, h2) with the output layer's line w2·h + b2 = 0.

    Drawn for networks of two hidden units (the seed's 2-2-1)."""
    h = xor_hidden(params, XOR_INPUTS, activation)[0].numpy()
    w, b = params["w2"][0, :, 0].numpy(), params["b2"][0, 0].item()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(h[:, 0], h[:, 1], c=POINT_COLORS[XOR_TARGETS.long().numpy()], s=150, edgecolors="k", zorder=3)
    for (x1, x2), (a, c) in zip(XOR_INPUTS.long().tolist(), h):
        ax.annotate(f"({x1},{x2})", (a, c), textcoords="offset points", xytext=(8, 8))
    low, high = min(h.min(), -1.0) - 0.2, max(h.max(), 1.0) + 0.2
    line = np.linspace(low, high, 2)
    if abs(w[1]) > abs(w[0]):
        ax.plot(line, -(w[0] * line + b) / w[1], "k-", label="output boundary")
    else:
        ax.plot(-(w[1] * line + b) / w[0], line, "k-", label="output boundary")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel("h1")
    ax.set_ylabel("h2")
    ax.set_title(f"hidden layer ({activation}) after training")
    ax.legend(loc="best")
    _save(fig, path)


# --- Problem 3 -------------------------------------------------------------------------------------

def training_curves(history, title, path):
    """The seed's per-configuration figure: loss and accuracy, train and test, over the epochs."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for split, style in (("train", "-"), ("test", "--")):
        loss_ax.plot(history["epoch"], history[f"{split}_loss"], style, marker="o", ms=3, label=split)
        acc_ax.plot(history["epoch"], history[f"{split}_acc"], style, marker="o", ms=3, label=split)
    loss_ax.set_ylabel("cross-entropy loss")
    acc_ax.set_ylabel("accuracy")
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    _save(fig, path)


def overlay_curves(histories, column, path):
    """One curve per configuration (label -> history frame) of one column."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, history in histories.items():
        ax.plot(history["epoch"], history[column], marker="o", ms=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(column.replace("_", " "))
    if column.endswith("loss"):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title(column.replace("_", " ") + " per configuration")
    _save(fig, path)


# --- Problem 4 -------------------------------------------------------------------------------------

def adversarial_gallery(examples, path):
    """Rows of original | perturbation | adversarial, like the seed's figures.

    examples: dicts with 'original', 'adversarial' (28 x 28 in PIXEL_RANGE) and 'title'. The
    perturbation adversarial - original is shifted by (high - low) / 2, as in the seed ([0, 2])."""
    low, high = PIXEL_RANGE
    fig, axes = plt.subplots(len(examples), 3, figsize=(7.5, 2.6 * len(examples)), squeeze=False)
    for row, example in zip(axes, examples):
        noise = example["adversarial"] - example["original"]
        panels = (("original", example["original"], (low, high)),
                  ("perturbation", noise + (high - low) / 2, (0, high - low)),
                  ("adversarial", example["adversarial"], (low, high)))
        for ax, (name, image, (vmin, vmax)) in zip(row, panels):
            ax.imshow(image.numpy(), cmap="gray", vmin=vmin, vmax=vmax)
            ax.set_title(f"{example['title']}\n{name}" if name == "perturbation" else f"\n{name}", fontsize=9)
            ax.axis("off")
    _save(fig, path)


def image_grid(images, path, nrow=16):
    """A grid of N x 28 x 28 images in PIXEL_RANGE (torchvision's make_grid)."""
    import torchvision  # here, not at the top: importing it costs every stage ~2 s of start-up

    grid = torchvision.utils.make_grid(images.unsqueeze(1), nrow=nrow, padding=2, normalize=True,
                                       value_range=PIXEL_RANGE, pad_value=1.0)
    torchvision.utils.save_image(grid, path)


def confusion_matrix(matrix, title, path):
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(matrix.numpy(), cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix.numpy()):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                    color="white" if count > matrix.max().item() / 2 else "black")
    ax.set_xticks(range(matrix.shape[1]))
    ax.set_yticks(range(matrix.shape[0]))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true label")
    ax.set_title(title)
    _save(fig, path)
