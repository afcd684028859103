"""Problem 1, the loss surfaces of a sigmoid neuron: the homework's four observations of section 1.6 against
the loss_surfaces stage's observations (plots/loss_surfaces/observations.csv)."""
import math

from stages.lib import html_page as html
from stages.lib.report.verdicts import Finding, combined
from stages.lib.report.words import count_of, percent, steps_text

FORMULA_TOLERANCE = 1e-9  # closed forms and autograd agree to rounding (float64)


def judge(observations):
    """Verdicts on the observations {setting: {observation: value}} of the settings 'seed_target' (the
    homework's target), 'class_label' and 'descent'."""
    seed, label, descent = observations["seed_target"], observations["class_label"], observations["descent"]
    fractions = [(s["target"], s["ce_gt_l2_fraction"]) for s in (seed, label)]
    worst_diff = max(seed["max_analytic_autograd_diff"], label["max_analytic_autograd_diff"])
    steps_l2, steps_ce = descent["steps_l2"], descent["steps_ce"]
    learned = not (math.isnan(steps_ce) or (not math.isnan(steps_l2) and steps_l2 <= steps_ce))
    larger = (seed["mean_abs_ce_grad_w"] > seed["mean_abs_l2_grad_w"]
              and label["mean_abs_ce_grad_w"] > label["mean_abs_l2_grad_w"])
    more_plateau = label["plateau_fraction_l2_grad_w"] > label["plateau_fraction_ce_grad_w"]
    vanishes = label["wrong_end_abs_l2_grad_w"] < seed["flat_threshold"]
    ce_near_x = abs(label["wrong_end_abs_ce_grad_w"] - abs(seed["x"])) < 0.01 * abs(seed["x"])
    verdicts = {
        "loss_values": "holds" if all(f == 1 for _, f in fractions) else "partly" if any(f > 0.5 for _, f in fractions)
        else "differs",
        "gradient_formulas": "holds" if worst_diff < FORMULA_TOLERANCE else "differs",
        "faster_learning": "holds" if larger and learned else "partly" if larger or learned else "differs",
        "flat_ends": "holds" if more_plateau and vanishes and ce_near_x else "partly" if more_plateau else "differs"}
    return {"seed": seed, "label": label, "descent": descent, "fractions": fractions, "worst_diff": worst_diff,
            "learned": learned, "claims": verdicts, "verdict": combined(verdicts.values())}


def render(v, claims, figures):
    """Section 1: each claim of `claims` (reference/seed.yaml) with its evidence, verdict and `figures`
    ({file name: image} of plots/loss_surfaces/figures)."""
    seed, label, descent, words = v["seed"], v["label"], v["descent"], v["claims"]
    x, points = seed["x"], int(seed["grid_points"])
    steps_l2, steps_ce = descent["steps_l2"], descent["steps_ce"]
    grid_words = (f"a grid of {points:,} (w, b) points, w in [{seed['w_min']:g}, {seed['w_max']:g}], b in "
                  f"[{seed['b_min']:g}, {seed['b_max']:g}], step {seed['step']:g}, x = {x:g}")
    per_b = ("equals ∂L/∂w (∂L/∂b = ∂L/∂w / x with x = 1), so only ∂/∂w is drawn" if x == 1 else
             f"is ∂L/∂w divided by x = {x:g}: the same surface scaled, so only ∂/∂w is drawn")
    start = (f"(w, b) = ({descent['start_w']:g}, {descent['start_b']:g}), where S = {descent['start_output']:.2g} "
             f"against the label y = {descent['target']:g}")
    descent_words = (f"Trained by gradient descent (learning rate {descent['lr']:g}) on the one example from the same "
                     f"confidently wrong start {start}, the neuron reaches |S - y| ≤ {descent['target_error']:g} "
                     f"after {steps_text(steps_ce)} with cross-entropy and "
                     f"{steps_text(steps_l2)} with L2 (at most {int(descent['max_steps']):,}).")
    ratio = (f" Cross-entropy needs {steps_l2 / steps_ce:.0f} times fewer steps."
             if v["learned"] and not math.isnan(steps_l2) else "")

    def claim(key, evidence, why, shown=""):
        return html.claim(claims[key]["section"], claims[key]["text"], evidence, words[key], why, shown)

    blocks = [
        claim("loss_values", "Cross-entropy exceeds L2 on " + " and ".join(
            f"{count_of(round(f * points), points, 'grid points')} at target y = {y:g}" for y, f in v["fractions"])
            + f" ({grid_words}).",
            "cross-entropy is the larger loss " + ("at every point of both grids." if words["loss_values"] == "holds"
                                                   else "on only part of the grid."),
            html.figures(figures, {"seed_target.png": f"The homework's five plots at its target y = {seed['target']:g}: "
                                                      f"S, L2, ∂L2/∂w, cross-entropy, ∂CE/∂w ({grid_words})"})),
        claim("gradient_formulas", f"The homework's closed forms and autograd differ by at most {v['worst_diff']:.1e} "
              f"over both grids (float64). ∂L/∂b {per_b}.",
              "the formulas are the derivatives (to rounding)." if words["gradient_formulas"] == "holds" else
              "the formulas do not match autograd."),
        claim("faster_learning",
              f"Mean |∂CE/∂w| over the grid is {seed['mean_abs_ce_grad_w']:.3f} against {seed['mean_abs_l2_grad_w']:.3f} "
              f"for L2 at y = {seed['target']:g}, and {label['mean_abs_ce_grad_w']:.3f} against "
              f"{label['mean_abs_l2_grad_w']:.3f} at the class label y = {label['target']:g}. " + descent_words + ratio,
              "the larger gradient learns faster: cross-entropy reaches the target first."
              if words["faster_learning"] == "holds" else
              "the measured gradients or step counts do not both favour cross-entropy.",
              html.figures(figures, {"descent.png": f"|S - y| over the gradient-descent steps from {start}, one run "
                                                    "per loss"}, width=560)),
        claim("flat_ends",
              f"A plateau here is a flat gradient (|∂L/∂w| < {seed['flat_threshold']:g}) where the output still misses "
              f"its target by at least {seed['wrong_by']:g}. At y = {seed['target']:g}, L2 has one on "
              f"{percent(seed['plateau_fraction_l2_grad_w'])} of the grid, cross-entropy on "
              f"{percent(seed['plateau_fraction_ce_grad_w'])} (its gradient vanishes only on the line S = y, its "
              f"minimum, which is no plateau); at y = {label['target']:g}, "
              f"{percent(label['plateau_fraction_l2_grad_w'])} against {percent(label['plateau_fraction_ce_grad_w'])}. "
              "Where the neuron is most confidently wrong "
              f"(S = {label['wrong_end_output']:.1e} against y = {label['target']:g}), |∂L2/∂w| = "
              f"{label['wrong_end_abs_l2_grad_w']:.1e} while |∂CE/∂w| = {label['wrong_end_abs_ce_grad_w']:.4f}, against "
              f"|x| = {abs(x):g}. At y = {seed['target']:g} no output is wrong by more than 0.5, which is why the "
              "homework's setting hides this.",
              ("L2's gradient vanishes where the neuron is confidently wrong, cross-entropy's tends to |x|"
               + (f"; hence L2's {steps_text(steps_l2)} against cross-entropy's {steps_text(steps_ce)} above."
                  if v["learned"] else "."))
              if words["flat_ends"] == "holds" else "the measured plateaus do not match the homework's description.",
              html.figures(figures, {
                  "gradient_magnitudes.png": f"|∂L/∂w| of each loss against z = wx + b at the class label "
                                             f"y = {label['target']:g} (x = {x:g}), log scale",
                  "class_label.png": f"The loss and gradient surfaces at the class label y = {label['target']:g} "
                                     f"({grid_words})"}))]
    return html.section("1. Loss surfaces of a sigmoid neuron", blocks)


def finding(v):
    label, descent = v["label"], v["descent"]
    return Finding("Problem 1 (1.6)", "cross-entropy's larger gradient learns faster; L2's is flat at the ends",
                   f"{steps_text(descent['steps_ce'])} (cross-entropy) vs {steps_text(descent['steps_l2'])} (L2) from "
                   f"the same wrong start; |∂L2/∂w| = {label['wrong_end_abs_l2_grad_w']:.1e} vs |∂CE/∂w| = "
                   f"{label['wrong_end_abs_ce_grad_w']:.3f} there", v["verdict"])
