"""Problem 2, XOR with a 2-2-1 network: the homework's three observations of sections 2.1-2.3 against the xor
stage's variants (plots/xor/variants.csv: the non-linear network and the one without a non-linearity) and
their loss over the epochs (plots/xor/history.csv)."""
import math

from stages.lib import html_page as html
from stages.lib.report.verdicts import Finding, combined, measured
from stages.lib.report.words import count_of, percent

LINEAR_BEST = 0.75  # three of the four points: the most a linear classifier can get right on XOR
CHART_POINTS = 400  # epochs drawn per line of the loss chart, at most


def judge(nonlinear, linear, history, solved_epoch):
    """Verdicts on the two variants' rows (numbers, and the non-linear one's activation), the loss history and
    the epoch by which the homework's network solved XOR."""
    seeds = int(nonlinear["seeds"])
    solved = measured(nonlinear["seeds_solved_fraction"], seeds)
    linear_best = float(linear["max_final_accuracy_over_seeds"])
    first = nonlinear["first_solved_epoch"]
    solved_by = not math.isnan(first) and first <= solved_epoch
    verdicts = {
        "not_separable": "holds" if linear_best <= LINEAR_BEST and nonlinear["accuracy"] == 1 else "differs",
        "solved": "holds" if solved_by and solved["accuracy"] >= 0.5 else "partly" if solved_by else "differs",
        "needs_non_linearity": "holds" if float(linear["seeds_solved_fraction"]) == 0 and linear_best <= LINEAR_BEST
        else "differs"}
    return {"activation": nonlinear["activation"], "accuracy": float(nonlinear["accuracy"]), "seeds": seeds,
            "solved": solved, "first_solved": first, "solved_epoch": solved_epoch, "linear_best": linear_best,
            "linear_solved": float(linear["seeds_solved_fraction"]), "linear_loss": float(linear["final_loss"]),
            "epochs": int(history["epoch"].iloc[-1]), "history": history, "claims": verdicts,
            "verdict": combined(verdicts.values())}


def render(v, claims, figures):
    """Section 2: each claim of `claims` with its evidence, verdict and `figures` (plots/xor/figures)."""
    activation, seeds, solved, first, epochs, words = (v["activation"], v["seeds"], v["solved"], v["first_solved"],
                                                       v["epochs"], v["claims"])
    history = v["history"]
    step = max(1, len(history) // CHART_POINTS)
    long = [{"epoch": int(r.epoch), "network": name, "cross-entropy": getattr(r, f"{kind}_loss")}
            for r in history.iloc[::step].itertuples()
            for kind, name in (("nonlinear", f"{activation} hidden layer"), ("linear", "no non-linearity"))]

    def claim(key, evidence, why, shown=""):
        return html.claim(claims[key]["section"], claims[key]["text"], evidence, words[key], why, shown)

    blocks = [
        claim("not_separable",
              f"Over {seeds} random initialisations the network without a non-linearity never classifies more than "
              f"{percent(v['linear_best'], 0)} of the four points (its best over the initialisations); the {activation} "
              f"network classifies all four ({percent(v['accuracy'], 0)}), and its hidden layer moves the points so "
              "that one line separates them.",
              "no line separates XOR; the non-linear hidden layer makes it separable."
              if words["not_separable"] == "holds" else "a linear network separated XOR or the non-linear one failed.",
              html.figures(figures, {"problem.png": "The XOR problem: the four points, no line separates the colours",
                                     "nonlinear_hidden.png": f"The {activation} network's hidden layer after training: "
                                                             "the output layer's line separates the points"},
                           width=420)),
        claim("solved",
              (f"Our {activation} network (the plotted initialisation) classifies all four points from epoch "
               f"{int(first):,} on" if not math.isnan(first) else
               f"Our plotted {activation} network never classifies all four points")
              + f" (the homework: by epoch {v['solved_epoch']:,}). Over {seeds} initialisations trained for {epochs:,} "
              f"epochs, {count_of(round(solved['accuracy'] * seeds), seeds, 'solve it')}: "
              f"{percent(solved['accuracy'], 0)} (95 % Wilson interval {percent(solved['low'], 0)}–"
              f"{percent(solved['high'], 0)}); the others stop on a plateau.",
              "it solves XOR in time, and on most initialisations." if words["solved"] == "holds" else
              f"our plotted network solves it in time, but only a minority of initialisations do within "
              f"{epochs:,} epochs." if words["solved"] == "partly" else "our network does not solve it in time.",
              html.figures(figures, {"nonlinear_boundaries.png": f"The {activation} network's decision boundary over "
                                                                 "the epochs (the 0.5 contour in black)"}, width=760)),
        claim("needs_non_linearity",
              f"The network without a non-linearity solves XOR for "
              f"{count_of(round(v['linear_solved'] * seeds), seeds, 'initialisations')}; its loss ends at "
              f"{v['linear_loss']:.4f}, {abs(v['linear_loss'] - math.log(2)):.1e} from ln 2 = {math.log(2):.4f}, the "
              "loss of the best linear model on XOR (every output 0.5).",
              "a stack of linear layers is one linear classifier and cannot solve XOR."
              if words["needs_non_linearity"] == "holds" else "a linear network solved XOR.",
              html.line_chart("xor-loss", long, "epoch", "cross-entropy", "network",
                              "XOR: cross-entropy over the epochs", log_y=True)
              + html.figures(figures, {"linear_boundaries.png": "The network without a non-linearity: its boundary "
                                                                "over the epochs"}, width=760))]
    return html.section("2. XOR with a 2-2-1 network", blocks)


def finding(v):
    first = v["first_solved"]
    return Finding("Problem 2 (2.1–2.3)", f"XOR needs a non-linearity; the {v['activation']} network solves it by "
                                          f"epoch {v['solved_epoch']}",
                   f"no non-linearity: best {percent(v['linear_best'], 0)} over {v['seeds']} initialisations; "
                   f"{v['activation']}: solved from epoch {int(first) if not math.isnan(first) else '—'}, on "
                   f"{percent(v['solved']['accuracy'], 0)} of initialisations", v["verdict"])
