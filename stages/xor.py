"""Stage xor (seed section 2): the 2-2-1 network (tanh hidden, sigmoid out, cross-entropy, full-batch
gradient descent) on XOR, and the same network without a hidden non-linearity.

Writes the decision boundary at each snapshot epoch (grid figure and GIF), the hidden-layer view
(for two hidden units), per-epoch loss and accuracy (plots/xor/history.csv), each variant's summary
(plots/xor/variants.csv) and the headline numbers in metrics/xor.json, which include the fraction
of `xor.n_seeds` seeds each variant solves.
"""
import math
from typing import Annotated, Literal

from pydantic import Field, field_validator

from stages.lib import cli, plotting
from stages.lib.io import staged_outputs, write_csv, write_json
from stages.lib.params import Count, Section, Seed, StageParams, load_params, unique
from stages.lib.xor import first_solved_epoch, train_xor, xor_init

FIGURES = "plots/xor/figures"
HISTORY = "plots/xor/history.csv"
VARIANTS = "plots/xor/variants.csv"
METRICS = "metrics/xor.json"
HEADLINE = {"nonlinear": ("accuracy", "first_solved_epoch", "seeds_solved_fraction"),
            "linear": ("seeds_solved_fraction",)}


MAX_HISTORY = 200_000_000  # (epochs + 1) x (n_seeds + 1) recorded losses and accuracies held in memory
MAX_FRAMES = 2000          # snapshots kept for the GIF


class XorSection(Section):
    """Params section `xor`."""
    activation: Literal["tanh", "sigmoid", "relu"]
    hidden: Annotated[int, Field(ge=1, le=64)]
    init: Literal["normal", "uniform", "xavier"]
    init_scale: Annotated[float, Field(gt=0, le=1e6)]
    lr: Annotated[float, Field(gt=0, le=1e6)]
    epochs: Count
    n_seeds: Count
    seed: Seed
    snapshot_epochs: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]
    gif_every: Count

    @field_validator("snapshot_epochs")
    @classmethod
    def _within_training(cls, value, info):
        epochs = info.data.get("epochs", math.inf)
        late = [e for e in value if e > epochs]
        if late:
            raise ValueError(f"must be epochs in 0..xor.epochs ({epochs}), got {late[0]}")
        return unique(value)

    @field_validator("gif_every")
    @classmethod
    def _bounded_frames(cls, value, info):
        frames = info.data.get("epochs", 0) // value + 1
        if frames > MAX_FRAMES:
            raise ValueError(f"gives {frames} GIF frames; at most {MAX_FRAMES} are allowed (raise it)")
        return value

    @field_validator("n_seeds")
    @classmethod
    def _bounded_history(cls, value, info):
        size = (info.data.get("epochs", 0) + 1) * (value + 1)
        if size > MAX_HISTORY:
            raise ValueError(f"with xor.epochs {info.data['epochs']:,} records {size:,} losses; "
                             f"at most {MAX_HISTORY:,} fit in memory")
        return value


class Params(StageParams):
    xor: XorSection


def read_params(path):
    """What this stage reads of params.yaml (all of it is listed in dvc.yaml)."""
    return load_params(Params, path).xor


def train_variant(x, activation, seeds, snapshot_epochs=(), desc=None):
    initial = xor_init(seeds, x.hidden, x.init, x.init_scale)
    return train_xor(initial, activation, x.lr, x.epochs, snapshot_epochs, desc=desc)


def main(argv=None):
    args = cli.parser(__doc__).parse_args(argv)
    p = read_params(args.params)
    animation_epochs = set(range(0, p.epochs + 1, p.gif_every)) | {p.epochs}
    snapshot_epochs = set(p.snapshot_epochs) | animation_epochs
    variants = {"nonlinear": p.activation, "linear": "linear"}
    summaries, history, runs = {}, {"epoch": range(p.epochs + 1)}, {}
    for name, activation in variants.items():
        curves, snapshots, final = train_variant(p, activation, [p.seed], snapshot_epochs,
                                                 desc=f"xor {name}, seed {p.seed}")
        many, _, _ = train_variant(p, activation, range(p.n_seeds), desc=f"xor {name}, {p.n_seeds} seeds")
        runs[name] = (snapshots, final)
        history[f"{name}_loss"] = curves["loss"][:, 0].numpy()
        history[f"{name}_accuracy"] = curves["accuracy"][:, 0].numpy()
        solved = first_solved_epoch(many["accuracy"])
        summaries[name] = {
            "variant": name,
            "activation": activation,
            "final_loss": curves["loss"][-1, 0].item(),
            "accuracy": curves["accuracy"][-1, 0].item(),
            "first_solved_epoch": first_solved_epoch(curves["accuracy"])[0],
            "seeds": p.n_seeds,
            "seeds_solved_fraction": sum(s is not None for s in solved) / p.n_seeds,
            "max_final_accuracy_over_seeds": many["accuracy"][-1].max().item(),
        }
    with staged_outputs() as stage:
        figures = stage(FIGURES)
        figures.mkdir()
        plotting.xor_problem(figures / "problem.png")
        for name, activation in variants.items():
            snapshots, final = runs[name]
            chosen = {e: snapshots[e] for e in p.snapshot_epochs}
            title = f"{activation} hidden layer: decision boundary over the epochs"
            plotting.boundary_grid(chosen, activation, figures / f"{name}_boundaries.png", title)
            plotting.boundary_animation({e: snapshots[e] for e in sorted(animation_epochs)}, activation,
                                        figures / f"{name}_boundaries.gif")
            if p.hidden == 2:
                plotting.hidden_view(final, activation, figures / f"{name}_hidden.png")
        write_csv(stage(HISTORY), history)
        write_csv(stage(VARIANTS), list(summaries.values()))
        write_json(stage(METRICS), {name: {k: summaries[name][k] for k in keys} for name, keys in HEADLINE.items()})
    if p.hidden != 2:
        print(f"xor: the hidden-layer view is drawn for 2 hidden units only (xor.hidden is {p.hidden})")
    for name, m in summaries.items():
        print(f"xor {name}: accuracy {m['accuracy']:.2f}, first solved at epoch {m['first_solved_epoch']}, "
              f"{m['seeds_solved_fraction']:.0%} of {m['seeds']} seeds solve it")


if __name__ == "__main__":
    cli.run(main)
