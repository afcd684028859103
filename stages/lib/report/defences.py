"""Section 5, the defences (metrics/train, role 'defence') measured by the robustness stages: each defence
that records the homework's claim it tests (its `claim`, a key of reference/seed.yaml's claims) is judged
against that claim, any other is measured beside them; then the threat model, the gradient-masking checks,
the robust accuracy of every evaluated model against ε, and transfer against perturbation size.

A defence the robustness stages did not evaluate is 'not measured'. Two models evaluated on the same images
are compared image by image (McNemar's exact test); ours against the literature's figures of
reference/anchors.yaml as independent samples."""
import math
import re
from dataclasses import dataclass
from typing import Callable

from stages.lib import html_page as html
from stages.lib.report.verdicts import Finding, measured, paired_on
from stages.lib.report.words import (capitalised, count_of, difference_words, number_word, percent, points,
                                     short_interval, short_label, with_interval)
from stages.lib.stats import HIGHER, UNDETECTED, independent, paired_flags

WORST = "worst case per image"  # the curves' 'worst' column: an image counts only if every attack failed on it
ONLY_AUTOATTACK = "fooled by AutoAttack alone"  # the curves' 'only_autoattack' column
CHECKS = {  # Carlini et al. 2019's checks: the report's name, what a warning found, what that means
    "iterative_vs_single_step": ("Iterative attacks at least as strong as one step",
                                 "one FGSM step found examples the iterative attack missed",
                                 "its gradients mislead an iterative search, a sign of masked gradients"),
    "more_steps": ("More PGD steps never raise the accuracy", "a longer PGD run found fewer examples",
                   "the attack has not converged, or the gradients are noisy"),
    "large_budget": ("A large enough budget breaks every image", "a budget that reaches a grey image left images robust",
                     "the attacks cannot reach examples that exist: the evaluation is unreliable"),
    "gradient_free": ("The gradient-free attack finds nothing the gradient attacks missed",
                      "the gradient-free Square attack found examples every gradient attack missed",
                      "the gradients point away from examples that exist, a sign of partly masked gradients (the "
                      "worst case counts them)"),
    "transfer": ("Transfer from an undefended model no stronger than white-box attacks",
                 "images made on another model fooled this one more than attacks on its own gradients",
                 "a sign of masked gradients (the worst case counts them)"),
}


def right_at(model, epsilon):
    """{test index: robust} at budget epsilon (a headline key like '0.3'), from the per-image record."""
    images = model["images"]
    return dict(zip(images["test_index"].astype(int), images[epsilon] == ""))


def paired_models(first, second, epsilon):
    """stats.paired_flags of two models on the images both were evaluated on (the first of the permutation)."""
    a, b = right_at(first, epsilon), right_at(second, epsilon)
    shared = [i for i in a if i in b]
    return paired_flags([a[i] for i in shared], [b[i] for i in shared])


def curve_attacks(evaluated):
    """(The attacks every evaluated model's curves hold a column for, in the order of the fullest record, and
    those the chart draws beside the worst case: the ones bounded by ε on the model's own gradients, most
    gradient steps first, one per line style left)."""
    attacks = described(evaluated)["attacks"]
    columns = {c for m in evaluated.values() for c in m["curve"].columns}
    shown = [a for a in attacks if a in columns]
    own = [a for a in shown if "source" not in attacks[a] and attacks[a].get("bounded", True) and "steps" in attacks[a]]
    own.sort(key=lambda a: -attacks[a]["steps"] * attacks[a].get("restarts", 1))
    return shown, own[:len(html.DASHES) - 1]


def described(evaluated):
    """The fullest of the evaluated models' records (the one that lists the most attacks)."""
    return max(evaluated.values(), key=lambda m: len(m["about"]["attacks"]))["about"]


# --- the homework's two proposals: how each is judged and written --------------------------------------

def judge_retraining(d, model, top, context):
    """'Acts as a regularization': more robust than the baseline against fresh attacks on itself (paired), and
    its score on the section-4 images made on the source model, against the receiving model's."""
    name, receiver, sets, predictions = d["name"], context["receiver"], context["sets"], context["predictions"]
    gains = [e for e, c in d["compared"].items() if c["words"] == HIGHER]
    section_4 = None
    if ({f"untargeted_{name}", f"untargeted_{receiver}"} <= set(predictions.columns)
            and f"{name}_accuracy" in sets.columns and sets.loc["untargeted", "images"]):
        n = int(sets.loc["untargeted", "images"])
        section_4 = {"measured": measured(sets.loc["untargeted", f"{name}_accuracy"], n),
                     "paired": paired_on(predictions, name, receiver, "untargeted_")}
    robust_at_top = d["worst"][top]["accuracy"] >= 0.5
    return {"gains": gains, "section_4": section_4,
            "verdict": "holds" if robust_at_top else "partly" if gains else "differs"}


def render_retraining(d, v):
    labels, top = v["labels"], v["top"]
    base, source, receiver = labels[v["baseline"]], labels[v["source"]], labels[v["receiver"]]
    shown = ""
    if d["section_4"]:
        shown = (f" On {source}'s untargeted adversarial images (section 4) it scores "
                 f"{with_interval(d['section_4']['measured'])}; on the same images, "
                 + difference_words(d["section_4"]["paired"], d["short"], receiver) + ".")
    evidence = (f"{d['summary']}{shown} Against fresh attacks on itself (worst case): {at_budgets(d['worst'])}; "
                f"{base}: {at_budgets(v['base_worst'])}. On the same images: "
                + "; ".join(f"ε = {e}: " + difference_words(c, d["short"], base) for e, c in d["compared"].items()) + ".")
    why = ("it resists attacks made on itself." if d["verdict"] == "holds" else
           f"it resists {source}'s images and keeps more images than {base} against fresh attacks at "
           + ", ".join(f"ε = {e}" for e in d["gains"]) + " (a paired test on the same images), but fresh attacks at "
           f"ε = {top} still break {percent(1 - d['worst'][top]['accuracy'])} of the images."
           if d["verdict"] == "partly" else
           f"against fresh attacks on itself no difference from {base} is detectable.")
    return evidence, why, ""


def number_retraining(d, v):
    top, base = v["top"], v["base_worst"]
    return (f"worst case of {d['worst'][top]['images']:,} images, 95 % interval: " + "; ".join(
        f"ε = {e}: {short_interval(w)}" + (f" ({v['labels'][v['baseline']]}: {percent(base[e]['accuracy'])})"
                                          if base else "") for e, w in d["worst"].items()))


def judge_adversarial_loss(d, model, top, context):
    """'Robust (not completely)': at least half the images kept at the top budget, below its clean accuracy,
    with no check suggesting masked gradients; set against the literature's adversarially trained models
    (reference/anchors.yaml) by the same kind of attack."""
    anchors = context["anchors"]
    ours, top_row = at_top(d, model, top), model["curve"].set_index("epsilon").loc[float(top)]
    compared = beside_anchors(anchors["anchors"], ours, anchors["images"])
    robust = d["worst"][top]["accuracy"] >= 0.5 and d["worst"][top]["high"] < d["clean"]["high"]
    gains = d["compared"] is not None and d["compared"][top]["words"] == HIGHER
    return {"pgd": ours["pgd"], "anchors": compared, "anchor_images": anchors["images"], "robust": robust,
            "only_autoattack": 0 if math.isnan(top_row["only_autoattack"]) else int(top_row["only_autoattack"]),
            "verdict": "holds" if robust and not d["flagged"] else "partly" if robust or gains else "differs"}


def render_adversarial_loss(d, v):
    top, attacks, clean = v["top"], v["attacks"], d["clean"]
    worst = d["worst"][top]
    pgd_label = attacks["pgd"]["label"]
    rows, sentences = [], []
    for c in d["anchors"]:
        anchor, diff = c["anchor"], c["difference"]
        rows.append({"defence": anchor["defence"], "attack": anchor["attack"],
                     f"robust accuracy at ε {top}": f"{percent(anchor['accuracy'])} of {d['anchor_images']:,}",
                     "ours, by the same kind of attack":
                         f"{pgd_label if c['family'] == 'pgd' else 'our worst case'}: {short_interval(c['ours'])}",
                     "ours minus theirs, points (95 % interval)": f"{points(diff['difference'])} ({points(diff['low'])} "
                                                                  f"to {points(diff['high'])}): {diff['words']}",
                     "source": anchor["source"]})
        sentences.append(f"{anchor['defence']} under {anchor['attack']}, {percent(anchor['accuracy'])}: ours "
                         + (f"is {abs(100 * diff['difference']):.1f} points {diff['words']}"
                            if diff["words"] != UNDETECTED else f"shows {diff['words']}"))
    evidence = (f"{d['summary']} Clean: {with_interval(clean)}. Worst case per image: {at_budgets(d['worst'])}"
                + (f"; {v['labels'][v['baseline']]}: {at_budgets(v['base_worst'])}" if v["base_worst"] else "")
                + f". {pgd_label} alone leaves {short_interval(d['pgd'])}; {attacks['autoattack']['label']}, fooled "
                  f"{d['only_autoattack']:,} images every other attack missed. " + masking_words(d)
                + f". Against the literature at ε = {top} (each figure on its {d['anchor_images']:,} test images; each "
                  f"compared with ours by the same kind of attack: a PGD figure with our {pgd_label}, whatever its own "
                  "steps and restarts, an AutoAttack or strongest-attack figure with our worst case, which includes "
                  "AutoAttack and so is at most what it alone would give; Madry et al.'s and TRADES' CNNs are larger "
                  "than ours): " + "; ".join(sentences) + ".")
    why = (f"it is robust, and not completely: at ε = {top} it keeps {percent(worst['accuracy'])} of the images, "
           f"{100 * (clean['accuracy'] - worst['accuracy']):.1f} points below its clean {percent(clean['accuracy'])}, "
           "and no check suggests masked gradients." if d["verdict"] == "holds"
           else f"it keeps {percent(worst['accuracy'])} of the images at ε = {top}, but a check against masked "
                "gradients warns (" + "; ".join(d["flagged"]) + "), so part of that may be masked gradients."
           if d["robust"] and d["flagged"]
           else "it gains robustness, but keeps less than half the images at the top budget."
           if d["verdict"] == "partly" else "it gains no robustness.")
    return evidence, why, html.table(rows)


def number_at_top(d, v):
    return f"worst case at ε = {v['top']}: {with_interval(d['worst'][v['top']])}"


def number_beside_others(d, v):
    """A defence beyond the homework's: its worst case at the top budget, and against each of the homework's
    defences on the same images."""
    return number_at_top(d, v) + "".join(f"; {difference_words(o['compared'][v['top']], d['short'], o['short'])}"
                                         for o in d["defences_compared"])


@dataclass(frozen=True)
class Proposal:
    """One of the homework's proposed defences: its claim in short (the findings box), how a defence that
    tests it is judged (-> extra numbers and the verdict), written (-> evidence, why, shown) and summed up in a
    number, and whether that needs the baseline measured."""
    claim: str
    judge: Callable
    render: Callable
    number: Callable
    needs_baseline: bool


PROPOSALS = {  # keyed by the homework's claims (reference/seed.yaml)
    "defence_retrain": Proposal("retraining on adversarial images regularises", judge_retraining, render_retraining,
                                number_retraining, needs_baseline=True),
    "defence_adversarial_loss": Proposal("an adversarial loss term makes the network robust, not completely",
                                         judge_adversarial_loss, render_adversarial_loss, number_at_top,
                                         needs_baseline=False),
}


# --- every defence -----------------------------------------------------------------------------------

def at_budgets(worst):
    return "; ".join(f"ε = {e}: {with_interval(w)}" for e, w in worst.items())


def masking_words(d):
    checks = d["checks"]
    return "The gradient-masking checks: " + (f"{len(d['flagged'])} of {checks} warn ({'; '.join(d['flagged'])}); see "
                                              "the table below" if d["flagged"] else f"all {checks} pass")


def judge(defences, baseline, evaluated, transfer, anchors, section_4, labels):
    """Verdicts on the `defences` ([{name, label, claim?, summary?}], in label order) against the `baseline`
    (the first baseline model, {name, label}), from the robustness stages' records of the `evaluated` models
    ({name: {curve, about, images}}, in label order) and their transfer table; `anchors` the literature's
    figures; `section_4` {sets, predictions, source, receiver} of Problem 4's transfer; `labels` {model: label}."""
    headline = sorted(next(iter(evaluated.values()))["about"]["worst_case"], key=float)
    top = headline[-1]
    base = evaluated.get(baseline["name"]) if baseline else None
    context = {**section_4, "anchors": anchors}
    judged = []
    for defence in defences:
        proposal = PROPOSALS.get(defence.get("claim"))
        d = {"name": defence["name"], "label": defence["label"], "short": short_label(defence["label"]),
             "claim": defence.get("claim") if proposal else None, "summary": defence.get("summary", "")}
        model = evaluated.get(defence["name"])
        if model is None or (proposal and proposal.needs_baseline and base is None):
            judged.append({**d, "verdict": "unmeasured",
                           "left_out": [d["short"]] + ([baseline["label"]] if proposal and proposal.needs_baseline
                                                       and baseline else [])})
            continue
        d |= {"worst": {e: model["about"]["worst_case"][e] for e in headline}, "clean": model["about"]["clean"],
              "compared": {e: paired_models(model, base, e) for e in headline} if base else None,
              "flagged": [CHECKS[c["check"]][1] for c in model["about"]["checks"] if c["verdict"] != "pass"],
              "checks": len(model["about"]["checks"])}
        judged.append(d | (proposal.judge(d, model, top, context) if proposal else
                           {"verdict": "measured", **beside_others(d, model, judged, evaluated, anchors, top)}))
    shown, charted = curve_attacks(evaluated)
    return {"defences": judged, "headline": headline, "top": top, "evaluated": evaluated, "transfer": transfer,
            "attacks": described(evaluated)["attacks"], "curve_attacks": shown, "charted": charted,
            "baseline": baseline["name"] if base else None,
            "base_worst": {e: base["about"]["worst_case"][e] for e in headline} if base else None,
            "source": section_4["source"], "receiver": section_4["receiver"], "labels": labels}


def beside_others(d, model, judged, evaluated, anchors, top):
    """A defence beyond the homework set beside each measured defence of the homework's (`judged` so far, with
    a claim) on the images both were evaluated on, at every headline budget, and beside the literature's
    figures for its own method (reference/anchors.yaml's anchors whose `model` names it) at the top budget."""
    homework = [j for j in judged if j["claim"] and j["verdict"] != "unmeasured"]
    own = [a for a in anchors.get("anchors", []) if a.get("model") == d["name"]]
    return {"defences_compared": [{"label": j["label"], "short": j["short"], "compared": {
                e: paired_models(model, evaluated[j["name"]], e) for e in d["worst"]}} for j in homework],
            "literature": beside_anchors(own, at_top(d, model, top), anchors.get("images")),
            "anchor_images": anchors.get("images")}


def at_top(d, model, top):
    """Our two measures set against the literature at the top budget: the worst case and PGD alone."""
    worst, top_row = d["worst"][top], model["curve"].set_index("epsilon").loc[float(top)]
    return {"worst": worst, "pgd": measured(top_row["pgd"], worst["images"])}


def beside_anchors(anchors, ours, images):
    """Each literature figure (measured on `images` images) against ours by the same kind of attack: a PGD
    figure against our PGD, any other against our worst case; the difference counts both samples."""
    compared = []
    for anchor in anchors:
        mine = ours["pgd" if anchor["family"] == "pgd" else "worst"]
        compared.append({"anchor": anchor, "ours": mine, "family": anchor["family"],
                         "difference": independent(mine["correct"], mine["images"], anchor["accuracy"], images)})
    return compared


def render(v, claims):
    """Section 5: a block per measured defence (its claim of `claims` quoted where it tests one), then the
    tables and the chart of every evaluated model."""
    labels, blocks = v["labels"], []
    for d in v["defences"]:
        if d["verdict"] == "unmeasured":
            continue
        if d["claim"]:
            evidence, why, shown = PROPOSALS[d["claim"]].render(d, v)
            blocks.append(html.claim(claims[d["claim"]]["section"], claims[d["claim"]]["text"], evidence, d["verdict"],
                                     why, shown))
        else:
            blocks.append(html.judged(f"{capitalised(d['label'])}: not one of the homework's proposals.",
                                      other_evidence(d, v), d["verdict"],
                                      "the homework makes no claim about it to judge; the numbers are its measurement."))
    extra = sum(1 for d in v["defences"] if not d["claim"])
    return html.section(f"5. The homework's {number_word(len(PROPOSALS))} defences"
                        + (f" and {number_word(extra)} more" if extra else "") + ", measured", [
        threat_model(v), *blocks,
        html.heading("Checks against masked gradients"),
        html.paragraph("Carlini et al. 2019's checks that apply to a deterministic model, per model; a warning says "
                       "what it means."),
        html.table([row for name, m in v["evaluated"].items() for row in check_rows(labels, name, m["about"])]),
        html.heading("Robust accuracy against ε"),
        html.paragraph("Each cell: accuracy (95 % Wilson interval) on the model's images. The record of which attacks "
                       "fooled each image at each ε is in the repository beside these tables."),
        html.table(robust_accuracy_rows(v)), robustness_chart(v), transfer_table(v)])


def other_evidence(d, v):
    """A defence that tests none of the homework's claims: its clean and worst-case accuracy, against the
    baseline's and each of the homework's defences' on the same images, against the published figure for its
    method, and the gradient-masking checks."""
    base = v["labels"][v["baseline"]] if v["baseline"] else None
    return (f"{d['summary']} Clean: {with_interval(d['clean'])}. Worst case per image: {at_budgets(d['worst'])}"
            + (f"; {base}: {at_budgets(v['base_worst'])}. On the same images: " + "; ".join(
                f"ε = {e}: " + difference_words(c, d["short"], base) for e, c in d["compared"].items()) if base else "")
            + "".join(f". On the same images as {o['label']} ({o['compared'][v['top']]['images']:,}): " + "; ".join(
                f"ε = {e}: " + difference_words(c, d["short"], o["short"]) for e, c in o["compared"].items())
                for o in d["defences_compared"])
            + "".join(f". Against the published figure for its method at ε = {v['top']} ({c['anchor']['defence']} under "
                      f"{c['anchor']['attack']}, {percent(c['anchor']['accuracy'])} of {d['anchor_images']:,} test "
                      f"images; its CNN is larger than ours), "
                      f"{'our worst case' if c['family'] != 'pgd' else v['attacks']['pgd']['label']} "
                      f"{short_interval(c['ours'])}: "
                      + difference_words(c["difference"], "ours", "theirs")
                      for c in d["literature"])
            + ". " + masking_words(d) + ".").lstrip()


def robust_accuracy_rows(v):
    attacks, rows = v["attacks"], []
    for name, m in v["evaluated"].items():
        for r in m["curve"].to_dict("records"):
            n = int(r["images"])
            rows.append({"model": v["labels"][name], "ε": f"{r['epsilon']:g}", "images": f"{n:,}",
                         **{attacks[a]["label"]: None if math.isnan(r.get(a, math.nan)) else
                            short_interval(measured(r[a], n)) for a in v["curve_attacks"]},
                         WORST: None if math.isnan(r["worst"]) else short_interval(measured(r["worst"], n)),
                         ONLY_AUTOATTACK: None if math.isnan(r["only_autoattack"]) else int(r["only_autoattack"])})
    return rows


def robustness_chart(v):
    """Accuracy against ε per model: the worst case solid, the charted attacks dashed, then dotted."""
    names = {"worst": WORST, **{a: v["attacks"][a]["label"] for a in v["charted"]}}
    rows = [{"ε": r["epsilon"], "model": v["labels"][name], "attack": label, "accuracy": r[a]}
            for name, m in v["evaluated"].items() for r in m["curve"].to_dict("records") for a, label in names.items()]
    title = ", ".join(f"{label} ({style})" for label, style in zip(names.values(), html.DASH_WORDS))
    return html.line_chart("robustness", rows, "ε", "accuracy", "model", f"Accuracy against ε ([0, 1] units): {title}",
                           color_order=[v["labels"][n] for n in v["evaluated"]], dash="attack",
                           dash_order=list(names.values()))


def transfer_table(v):
    transfer, labels = v["transfer"], v["labels"]
    source = labels[transfer["source"].iloc[0]]
    rows = []
    for r in transfer.to_dict("records"):
        n = int(r["images"])
        rows.append({"source": labels[r["source"]],
                     "images made": "PGD within ε" if r["setting"] == "pgd" else "the homework's attack, to a margin",
                     "ε": "—" if math.isnan(r["epsilon"]) else f"{r['epsilon']:g}",
                     "logit margin": "—" if math.isnan(r["margin"]) else f"{r['margin']:g}",
                     "median L∞": "—" if math.isnan(r["median_linf"]) else f"{r['median_linf']:.3f}",
                     "images": f"{n:,}", **{labels[m]: short_interval(measured(r[m], n)) for m in v["evaluated"]}})
    return (html.heading("Transfer against perturbation size")
            + html.paragraph(f"{source}'s adversarial images shown to every model: PGD images made within each ε (one "
                             f"start, 50 steps, no early stop: so {source}'s own row can lie a little above its worst "
                             "case above), and the homework's unbounded attack run until the source's wrong logit leads "
                             "by each margin (median L∞ in [0, 1] units). Each cell: accuracy (95 % Wilson interval).")
            + html.table(rows))


def threat_model(v):
    """The facts every model's record holds: the norm, ε, the images, each attack, the versions."""
    labels, first = v["labels"], described(v["evaluated"])
    threat, attacks = first["threat_model"], first["attacks"]
    fgsm, pgd, minimal, auto = attacks["fgsm"], attacks["pgd"], attacks["minimal"], attacks["autoattack"]
    checks = [a for name, a in attacks.items() if re.fullmatch(r"pgd[0-9]+", name)]  # the more-steps check's
    parts = [attacks[p] for p in auto["attacks"]]
    rows = [{"model": labels[name], "images": f"{m['about']['images']['count']:,}",
             "selection": m["about"]["images"]["selection"], "seed": m["about"]["images"]["seed"]}
            for name, m in v["evaluated"].items()]
    versions = ", ".join(f"{k} {version}" for k, version in first["versions"].items())
    transfer = attacks.get("transfer")
    return (html.heading("Threat model") + html.paragraph(
        f"{threat['norm'].replace('inf', '∞')} attacks of budget ε = " + ", ".join(f"{e:g}" for e in threat["epsilon"])
        + f", in {threat['epsilon_units']}. At every ε: {fgsm['label']}; {pgd['label']} ({pgd['steps']} steps of "
          f"{pgd['step_size']:g} in [0, 1] units, {pgd['restarts']} random restarts); the homework's attack (steps of "
          f"{minimal['step_size_model_units']:g} in the models' [-1, 1] units, at most {minimal['max_steps']:,}), "
          "which is unbounded: an image counts as fooled at ε when its first misclassified image lies within ε"
        + (f"; PGD-{transfer['steps']} images made on {labels[transfer['source']]} (one random start, every step "
           f"taken), shown to the model (transfer; not for {labels[transfer['source']]} itself)" if transfer else "")
        + f". At ε = {checks[0]['epsilon'][0]:g}: " + ", ".join(f"{a['label']} (step {a['step_size']:g})" for a in checks)
        + ", one random start each. "
        + (f"At ε = {', '.join(f'{e:g}' for e in auto['epsilon'])}: {auto['label']}, "
           + ("the reference's settings: " if auto["reference_settings"] else "not the reference's settings: ")
           + ", ".join(a["label"] for a in parts) + f" ({auto['library']}), {auto['run']}. "
           if auto["epsilon"] else "No AutoAttack. ")
        + f"The worst case per image counts an image as robust only if every attack failed on it. Intervals: "
          f"{first['interval']}; two models on the same images are compared by McNemar's exact test, with Newcombe's "
          f"95 % interval of the difference. Software: {versions}.") + html.table(rows))


def check_rows(labels, name, about):
    """The gradient-masking checks of one model as table rows, each with its numbers and verdict."""
    rows = []
    for c in about["checks"]:
        title, found, meaning = CHECKS[c["check"]]
        n = about["images"]["count"]
        if c["check"] == "iterative_vs_single_step":
            beat = [r for r in c["numbers"] if r["pgd_minus_fgsm"]["only_first"]]  # PGD right, FGSM wrong
            numbers = ("PGD at most FGSM at every ε: " + ", ".join(
                f"ε {r['epsilon']:g}: {percent(r['pgd'])} vs {percent(r['fgsm'])}" for r in c["numbers"])
                + ("; FGSM alone fooled " + ", ".join(f"{r['pgd_minus_fgsm']['only_first']} at ε {r['epsilon']:g}"
                                                      for r in beat) if beat else "; FGSM fooled no image PGD missed"))
        elif c["check"] == "more_steps":
            numbers = f"at ε {c['epsilon']:g}: " + " / ".join(f"{s['steps']} steps {percent(s['accuracy'])}"
                                                            for s in c["numbers"])
        elif c["check"] == "large_budget":
            numbers = (f"worst case at ε {c['epsilon']:g}: {percent(c['numbers']['worst'])} (at most "
                       f"{percent(c['numbers']['at_most'], 0)}, one class of ten, passes)")
        elif c["check"] == "gradient_free":
            numbers = (f"at ε {c['epsilon']:g}, Square fooled {count_of(c['numbers']['square_only'], n, 'images')} "
                       "every other attack missed "
                       f"({100 * c['numbers']['drop']:.2f} points; the reference warns above "
                       f"{100 * c['numbers']['alpha']:.1f})")
        else:
            numbers = (f"from {labels[c['source']]}: " + ", ".join(
                f"ε {r['epsilon']:g}: {percent(r['transfer'])} vs {percent(r['white_box'])}" for r in c["numbers"])
                + "; fooled by transfer alone: " + ", ".join(f"{r['transfer_only']}" for r in c["numbers"]))
        rows.append({"model": labels[name], "check": title, "numbers": numbers,
                     "verdict": "pass" if c["verdict"] == "pass" else f"warning: {found}: {meaning}"})
    return rows


def findings(v, claims):
    """A findings row per defence."""
    rows = []
    for d in v["defences"]:
        proposal = PROPOSALS.get(d["claim"]) if d["claim"] else None
        part = capitalised(d["short"]) + (f" ({claims[d['claim']]['section']})" if proposal else "")
        claim = proposal.claim if proposal else "none: not one of the homework's proposals"
        if d["verdict"] == "unmeasured":
            ours = f"not measured: robustness.models leaves out {' or '.join(d['left_out'])}"
        else:
            ours = (proposal.number if proposal else number_beside_others)(d, v)
        rows.append(Finding(part, claim, ours, d["verdict"]))
    return rows
