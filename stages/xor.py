"""Stage xor (seed section 2): the 2-2-1 network (tanh hidden, sigmoid out, cross-entropy, full-batch
gradient descent) on XOR, and the same network without a hidden non-linearity.

Writes the decision boundary at each snapshot epoch (grid figure and GIF), the hidden-layer view
(for two hidden units), per-epoch loss and accuracy (plots/xor/history.csv), each variant's summary
(plots/xor/variants.csv) and the headline numbers in metrics/xor.json, which include the fraction
of `xor.n_seeds` seeds each variant solves.
"""
from stages.lib import cli, plotting
from stages.lib.io import staged_outputs, write_csv, write_json
from stages.lib.models import xor_init
from stages.lib.params import load_params
from stages.lib.training import first_solved_epoch, train_xor

FIGURES = "plots/xor/figures"
HISTORY = "plots/xor/history.csv"
VARIANTS = "plots/xor/variants.csv"
METRICS = "metrics/xor.json"
HEADLINE = {"nonlinear": ("accuracy", "first_solved_epoch", "seeds_solved_fraction"),
            "linear": ("seeds_solved_fraction",)}


def read_params(params):
    """The plain values this stage uses; dvc.yaml lists exactly these keys."""
    x = params.xor
    return {"activation": x.activation, "hidden": x.hidden, "init": x.init, "init_scale": x.init_scale,
            "lr": x.lr, "epochs": x.epochs, "seed": x.seed, "snapshot_epochs": list(x.snapshot_epochs),
            "gif_every": x.gif_every, "n_seeds": x.n_seeds}


def train_variant(p, activation, seeds, snapshot_epochs=(), desc=None):
    initial = xor_init(seeds, p["hidden"], p["init"], p["init_scale"])
    return train_xor(initial, activation, p["lr"], p["epochs"], snapshot_epochs, desc=desc)


def main(argv=None):
    args = cli.parser(__doc__).parse_args(argv)
    p = read_params(load_params(args.params))
    animation_epochs = set(range(0, p["epochs"] + 1, p["gif_every"])) | {p["epochs"]}
    snapshot_epochs = set(p["snapshot_epochs"]) | animation_epochs
    variants = {"nonlinear": p["activation"], "linear": "linear"}
    summaries, history, runs = {}, {"epoch": range(p["epochs"] + 1)}, {}
    for name, activation in variants.items():
        curves, snapshots, final = train_variant(p, activation, [p["seed"]], snapshot_epochs,
                                                 desc=f"xor {name}, seed {p['seed']}")
        many, _, _ = train_variant(p, activation, range(p["n_seeds"]), desc=f"xor {name}, {p['n_seeds']} seeds")
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
            if p["hidden"] == 2:
                plotting.hidden_view(final, activation, figures / f"{name}_hidden.png")
        write_csv(stage(HISTORY), history)
        write_csv(stage(VARIANTS), list(summaries.values()))
        write_json(stage(METRICS), {name: {k: summaries[name][k] for k in keys} for name, keys in HEADLINE.items()})
    if p["hidden"] != 2:
        print(f"xor: the hidden-layer view is drawn for 2 hidden units only (xor.hidden is {p['hidden']})")
    for name, m in summaries.items():
        print(f"xor {name}: accuracy {m['accuracy']:.2f}, first solved at epoch {m['first_solved_epoch']}, "
              f"{m['seeds_solved_fraction']:.0%} of {m['seeds']} seeds solve it")


if __name__ == "__main__":
    cli.run(main)
