"""Stage xor (seed section 2): the 2-2-1 network (tanh hidden, sigmoid out, cross-entropy, full-batch
gradient descent) on XOR, and the same network without a hidden non-linearity.

Writes the decision boundary at each snapshot epoch (grid figure and GIF), the hidden-layer view,
per-epoch loss and accuracy (plots/xor/history.csv) and metrics/xor.json, which also holds the
fraction of `xor.n_seeds` seeds each variant solves.
"""
import pandas as pd
from tqdm import tqdm

from stages.lib import config, plotting
from stages.lib.models import ACTIVATIONS, xor_init
from stages.lib.io import staged_outputs, write_json
from stages.lib.training import first_solved_epoch, train_xor

FIGURES = "plots/xor/figures"
HISTORY = "plots/xor/history.csv"
METRICS = "metrics/xor.json"
INITS = ("normal", "uniform", "xavier")


def read_params(params):
    p = {
        "activation": config.choice(params, "xor.activation", [a for a in ACTIVATIONS if a != "linear"]),
        "hidden": config.number(params, "xor.hidden", integer=True, low=1),
        "init": config.choice(params, "xor.init", INITS),
        "init_scale": config.number(params, "xor.init_scale", low=0, low_open=True),
        "lr": config.number(params, "xor.lr", low=0, low_open=True),
        "epochs": config.number(params, "xor.epochs", integer=True, low=1),
        "seed": config.number(params, "xor.seed", integer=True, low=0),
        "n_seeds": config.number(params, "xor.n_seeds", integer=True, low=1),
        "gif_every": config.number(params, "xor.gif_every", integer=True, low=1),
    }
    p["snapshot_epochs"] = config.number_list(params, "xor.snapshot_epochs", integer=True, low=0, high=p["epochs"])
    return p


def train_variant(p, activation, seeds, snapshot_epochs=()):
    initial = xor_init(seeds, p["hidden"], p["init"], p["init_scale"])
    return train_xor(initial, activation, p["lr"], p["epochs"], snapshot_epochs)


def main(argv=None):
    args = config.parser(__doc__).parse_args(argv)
    p = read_params(config.load_params(args.params))
    animation_epochs = set(range(0, p["epochs"] + 1, p["gif_every"])) | {p["epochs"]}
    snapshot_epochs = set(p["snapshot_epochs"]) | animation_epochs
    variants = {"nonlinear": p["activation"], "linear": "linear"}
    metrics, history, runs = {}, {"epoch": range(p["epochs"] + 1)}, {}
    for name, activation in tqdm(variants.items(), desc="xor variants", disable=None):
        curves, snapshots, final = train_variant(p, activation, [p["seed"]], snapshot_epochs)
        many, _, _ = train_variant(p, activation, range(p["n_seeds"]))
        runs[name] = (snapshots, final)
        history[f"{name}_loss"] = curves["loss"][:, 0].numpy()
        history[f"{name}_accuracy"] = curves["accuracy"][:, 0].numpy()
        solved = first_solved_epoch(many["accuracy"])
        metrics[name] = {
            "activation": activation,
            "final_loss": curves["loss"][-1, 0].item(),
            "accuracy": curves["accuracy"][-1, 0].item(),
            "first_solved_epoch": first_solved_epoch(curves["accuracy"])[0],
            "seeds": p["n_seeds"],
            "seeds_solved_fraction": sum(s is not None for s in solved) / p["n_seeds"],
            "max_final_accuracy_over_seeds": many["accuracy"][-1].max().item(),
        }
    with staged_outputs() as stage:
        figures = stage(FIGURES)
        figures.mkdir()
        plotting.xor_problem(figures / "problem.png")
        for name, activation in variants.items():
            snapshots, final = runs[name]
            chosen = {e: snapshots[e] for e in p["snapshot_epochs"]}
            title = f"{activation} hidden layer: decision boundary over the epochs"
            plotting.boundary_grid(chosen, activation, figures / f"{name}_boundaries.png", title)
            plotting.boundary_animation({e: snapshots[e] for e in sorted(animation_epochs)}, activation,
                                        figures / f"{name}_boundaries.gif")
            plotting.hidden_view(final, activation, figures / f"{name}_hidden.png")
        pd.DataFrame(history).to_csv(stage(HISTORY), index=False, float_format="%.9g")
        write_json(stage(METRICS), metrics)
    for name, m in metrics.items():
        print(f"xor {name}: accuracy {m['accuracy']:.2f}, first solved at epoch {m['first_solved_epoch']}, "
              f"{m['seeds_solved_fraction']:.0%} of {m['seeds']} seeds solve it")


if __name__ == "__main__":
    config.run(main)
