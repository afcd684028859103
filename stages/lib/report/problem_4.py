"""Problem 4, adversarial images: the homework's observations of sections 4.1-4.3 against the attack stages
(plots/attack_<kind>/images.csv, per test image) and the transfer stage (plots/transfer/sets.csv: the source
model's adversarial images shown to the other models)."""
import math

from stages.lib import html_page as html
from stages.lib.report.verdicts import Finding, combined, measured
from stages.lib.report.words import against, capitalised, count_of, percent, with_interval
from stages.lib.stats import HIGHER, UNDETECTED, independent

KINDS = ("untargeted", "targeted")
MODEL_SPAN = 2  # the models' pixels span [-1, 1]: a budget there is twice the [0, 1] one


def judge(attacks, sets, source, receiver, seed):
    """Verdicts on each attack's per-image table ({kind: {"images", "steps_median"}}), the transfer sets
    (indexed by set) made on `source` and shown to `receiver`, and the homework's numbers (reference/seed.yaml)."""
    found, verdicts = {}, {}
    for kind in KINDS:
        images = attacks[kind]["images"]
        success = measured(images["success"].mean(), len(images))
        linf = images.loc[images["success"], "linf"] / MODEL_SPAN
        gallery = seed["attack"][kind]["gallery"]
        in_ours = images.set_index("index")
        shown = [i for i in gallery if i in in_ours.index]
        key = "predicted" if kind == "untargeted" else "target"
        found[kind] = {"success": success, "median_linf": float(linf.median()) if len(linf) else math.nan,
                       "steps_median": attacks[kind]["steps_median"], "images": len(images), "shown": len(shown),
                       "same": sum(int(in_ours.loc[i, key]) == gallery[i][key] for i in shown),
                       "on_target": int((images["predicted"] == images["target"]).sum()),
                       "gallery": images[images["gallery_row"] >= 0].sort_values("gallery_row").to_dict("records")}
        verdicts[kind] = ("holds" if success["low"] > 0.99 else "partly" if success["accuracy"] > 0.5 else "differs")
        n = int(sets.loc[kind, "images"])
        found[kind]["transfer"] = {
            "receiver": measured(sets.loc[kind, f"{receiver}_accuracy"], n),
            "source": measured(sets.loc[kind, f"{source}_accuracy"], n)} if n else None
    versus = {k: independent(f["transfer"]["receiver"]["correct"], f["transfer"]["receiver"]["images"],
                             seed["transfer"][k]["accuracy"], seed["transfer"][k]["images"])["words"]
              for k, f in found.items() if f["transfer"]}
    within = versus and all(w == UNDETECTED for w in versus.values())
    verdicts["transfer"] = "holds" if within else "partly" if versus else "differs"
    untargeted = found["untargeted"]
    if untargeted["transfer"] is None:
        verdicts["not_universal"] = verdicts["sensitive"] = "differs"
    else:
        source_acc, receiver_acc = untargeted["transfer"]["source"], untargeted["transfer"]["receiver"]
        verdicts["not_universal"] = ("holds" if receiver_acc["low"] > 0.5 and source_acc["accuracy"] == 0 else
                                     "partly" if receiver_acc["accuracy"] > source_acc["accuracy"] else "differs")
        verdicts["sensitive"] = ("holds" if untargeted["success"]["accuracy"] > 0.99 and untargeted["median_linf"] < 0.5
                                 else "partly")
    return {"found": found, "versus": versus, "within": bool(within),
            "higher": bool(versus) and all(w == HIGHER for w in versus.values()), "source": source,
            "receiver": receiver, "claims": verdicts, "verdict": combined(verdicts.values())}


def gallery(kind, rows, strips, homework_gallery, source):
    """The gallery of attack `kind`: each of its `strips` (one image per row of its figure) framed and
    captioned from its row of images.csv."""
    out = []
    for strip, r in zip(strips, rows):
        index, seen = int(r["index"]), homework_gallery.get(int(r["index"]))
        aim = f", target {int(r['target'])}" if kind == "targeted" else ""
        seed_words = ("not in the homework's gallery: shown in place of one the attack could not show" if seen is None
                      else f"the homework: label {seen['label']}, predicted {seen['predicted']}" if "predicted" in seen
                      else f"the homework: label {seen['label']}, target {seen['target']}")
        out.append(html.figure(strip, f"Test image {index}: label {int(r['label'])}{aim}; {source} predicts "
                                      f"{int(r['predicted'])} after {int(r['steps'])} steps ({seed_words}). Original | "
                                      "perturbation (adversarial minus original; mid-grey is no change, as in the "
                                      "homework) | adversarial", css_class="strip"))
    return html.join(out)


def render(v, claims, seed, labels, figures, official, attack_step):
    """Section 4: each claim of `claims`; `labels` {model: label}; `figures` {kind: {"gallery": strips,
    "grid.png": image}, "transfer": {file name: image}}; `attack_step` the homework's attack's settings (from a
    robustness record)."""
    found, words = v["found"], v["claims"]
    source, receiver = labels[v["source"]], labels[v["receiver"]]

    def claim(key, evidence, why, shown=""):
        return html.claim(claims[key]["section"], claims[key]["text"], evidence, words[key], why, shown)

    blocks = []
    for kind in KINDS:
        f, success = found[kind], found[kind]["success"]
        target_words = (f" It lands on the chosen target on {count_of(f['on_target'], f['images'], 'images')}."
                        if kind == "targeted" else "")
        caveat = "" if official else (" The gallery indices are positions in the official MNIST test set; on other data "
                                      "they point to other digits.")
        attack_words = (f"Our attack (steps of {attack_step['step_size_model_units']:g} in the models' [-1, 1] pixel "
                        f"units, at most {attack_step['max_steps']:,}) on every test image {source} classifies "
                        "correctly ")
        if success["correct"]:
            evidence = (attack_words + f"succeeds on {with_interval(success)} after a median of "
                        f"{f['steps_median']:g} steps; the median L∞ size of a successful perturbation is "
                        f"{f['median_linf']:.3f} in [0, 1] pixel units.{target_words} On the homework's "
                        f"{f['shown']} gallery images, our {'prediction' if kind == 'untargeted' else 'target'} equals "
                        f"the homework's on {f['same']} (another model, other weights).{caveat}")
            shown = (gallery(kind, f["gallery"], figures[kind]["gallery"], seed["attack"][kind]["gallery"], source)
                     + html.figures(figures[kind], {"grid.png": f"64 of the {kind} adversarial images"}, width=420))
        else:
            evidence = attack_words + f"fooled none of the {f['images']:,} images: no adversarial image to show."
            shown = ""
        blocks.append(claim(kind, evidence, f"every image can be pushed to a wrong "
                                            f"{'target' if kind == 'targeted' else 'label'}." if words[kind] == "holds"
                            else "the attack fails on part of the images." if success["correct"] else
                            "the attack fails on every image.", shown))
    worded = []
    for kind in KINDS:
        transfer = found[kind]["transfer"]
        if transfer is None:
            worded.append(f"{kind}: no adversarial image of {source} to show {receiver}")
            continue
        theirs = seed["transfer"][kind]
        worded.append(f"{kind}: {receiver} classifies {with_interval(transfer['receiver'])} correctly, {source} "
                      f"{with_interval(transfer['source'])}; "
                      f"{against(transfer['receiver'], theirs['accuracy'], theirs['images'], 'the homework’s figure')}")
    blocks.append(claim(
        "transfer", ". ".join(capitalised(s) for s in worded) + ".",
        "our numbers match the homework's within sampling noise." if v["within"] else
        "there are no adversarial images to transfer." if not v["versus"] else
        f"{receiver} again classifies most of {source}'s adversarial images, but "
        + ("more of them than the homework's model 2: our images transfer less." if v["higher"] else
           "not as many as the homework reports, beyond sampling noise."),
        html.figures(figures["transfer"], {
            "confusion_untargeted.png": f"{receiver}'s predictions on {source}'s untargeted images",
            "confusion_targeted.png": f"{receiver}'s predictions on {source}'s targeted images"},
            width=420)))
    untargeted = found["untargeted"]
    if untargeted["transfer"] is None:
        blocks += [claim("not_universal", f"{source} has no untargeted adversarial image to show.",
                         "without adversarial images there is nothing to transfer."),
                   claim("sensitive", "No untargeted perturbation succeeded.", "the attack changes no prediction.")]
    else:
        linf = untargeted["median_linf"]
        blocks += [
            claim("not_universal", f"On {source}'s own untargeted adversarial images, {source} classifies "
                                   f"{with_interval(untargeted['transfer']['source'])} correctly and {receiver} "
                                   f"{with_interval(untargeted['transfer']['receiver'])}.",
                  "the images fool the model they were made on, and mostly only that one."
                  if words["not_universal"] == "holds" else
                  "the images transfer to the other model more than the homework says."),
            claim("sensitive", f"Half of the successful untargeted perturbations change no pixel by more than {linf:.3f} "
                               f"([0, 1] units, {percent(linf)} of the intensity range), yet {source} is fooled on "
                               f"{percent(untargeted['success']['accuracy'])} of the images. The homework's reading "
                               "(minimising a loss on finite data, akin to over-fitting) is an explanation, not a "
                               "measurement; section 5 tests its two remedies.",
                  "small, targeted changes fool the network." if words["sensitive"] == "holds" else
                  "the perturbations needed are not small.")]
    return html.section("4. Adversarial images", blocks)


def finding(v, labels, seed):
    source, receiver = labels[v["source"]], labels[v["receiver"]]
    transfer = v["found"]["untargeted"]["transfer"]
    if transfer is None:
        return Finding("Problem 4 (4.1–4.3)", f"{receiver} classifies many of {source}'s adversarial images: not "
                                              "universal", "no adversarial images", v["verdict"])
    homework, ours = seed["transfer"]["untargeted"], transfer["receiver"]
    return Finding("Problem 4 (4.1–4.3)", f"{receiver} classifies many of {source}'s adversarial images: not universal "
                                          f"({percent(homework['accuracy'])} of {homework['images']:,})",
                   f"{percent(ours['accuracy'])} of {ours['images']:,} (95 % interval {percent(ours['low'])}–"
                   f"{percent(ours['high'])}): "
                   + ("no difference from the homework's is detectable" if v["versus"]["untargeted"] == UNDETECTED else
                      f"{v['versus']['untargeted']} than the homework's {percent(homework['accuracy'])} beyond noise"),
                   v["verdict"])
