"""Problem 3, the MNIST CNN: the baseline models (metrics/train, role 'baseline') compared on the same test
images, and the homework's three observations of section 3 against the batch size × learning rate sweep
(plots/sweep_summary)."""
import math

from stages.lib import html_page as html
from stages.lib.report.verdicts import Finding, combined, measured, paired_on
from stages.lib.report.words import (NOT_PAIRED, against, capitalised, count_of, difference_words, number_word, percent,
                                     short_interval, with_interval)
from stages.lib.stats import UNDETECTED, independent

TARGET_TEST_ACCURACY = 0.98  # "finds the minimum": the first epoch at this test accuracy
OVER_FIT_RISE = 1.1  # over-fitting: the last test loss at least this times its minimum, training loss falling
LOW_LR = 1e-3  # below it a learning rate is an extra point of the sweep, not one the speed claim compares
SWEEP_MEASURES = ("training loss", "test loss", "test error (1 - accuracy)")


def point_label(batch_size, lr):
    return f"batch {int(batch_size)}, lr {float(lr):g}"


def drops(series):
    """The sum of the epoch-to-epoch falls of a series."""
    values = list(series)
    return sum(max(0.0, a - b) for a, b in zip(values, values[1:]))


def judge(baselines, n_test, predictions, sweep, curves, homework_points):
    """Verdicts on the baselines ([{name, label, final_test_acc, history}], in label order), the clean
    predictions per test image, the sweep's table and per-epoch curves, and the homework's (batch size,
    learning rate) points."""
    sweep = sweep.sort_values(["batch_size", "lr"], ascending=[True, False], kind="stable")
    by_point = {p: c.sort_values("epoch") for p, c in curves.groupby("point")}
    comparison = None
    if len(baselines) >= 2:
        first, second = baselines[0], baselines[1]
        paired = {first["name"], second["name"]} <= set(predictions.columns)
        comparison = {"first": first, "second": second, "measured": measured(first["final_test_acc"], n_test),
                      "paired": paired_on(predictions, first["name"], second["name"]) if paired else None}
    ours = {(int(r.batch_size), float(r.lr)) for r in sweep.itertuples()}
    parts = {"over_fitting": over_fitting(sweep, by_point, n_test),
             "batch_size": batch_stability(sweep, by_point, n_test),
             "learning_rate": learning_rate_speed(sweep, by_point, n_test)}
    return {"baselines": baselines, "n_test": n_test, "comparison": comparison, "sweep": sweep, "by_point": by_point,
            "homework_points": len(homework_points),
            "missing": [p for p in map(tuple, homework_points) if (p[0], float(p[1])) not in ours],
            "claims": parts, "verdict": combined(p["verdict"] for p in parts.values())}


def over_fitting(sweep, by_point, n_test):
    """The points whose test loss ends OVER_FIT_RISE above its minimum while the training loss falls, and
    those of them whose last accuracy is not detectably below their best."""
    rising, stagnant = [], []
    for r in sweep.itertuples():
        c = by_point[r.point]
        lowest = c["test_loss"].idxmin()
        train_falls = c["train_loss"].iloc[-1] < c.loc[lowest, "train_loss"]
        if c["test_loss"].iloc[-1] >= OVER_FIT_RISE * c.loc[lowest, "test_loss"] and train_falls:
            rising.append(point_label(r.batch_size, r.lr))
            best = measured(c["test_acc"].max(), n_test)
            last = measured(c["test_acc"].iloc[-1], n_test)
            if independent(last["correct"], n_test, best["accuracy"], n_test)["words"] == UNDETECTED:
                stagnant.append(r.point)
    n = len(sweep)
    verdict = ("holds" if rising and len(stagnant) == len(rising) and 2 * len(rising) >= n else "partly" if rising
               else "differs")
    return {"rising": rising, "stagnant": len(stagnant), "points": n, "verdict": verdict}


def batch_stability(sweep, by_point, n_test):
    """Per learning rate with several batch sizes, the summed falls of test accuracy per batch size and
    whether they shrink as the batch grows."""
    per_lr, steady = [], 0
    grid = sweep[sweep.groupby("lr")["batch_size"].transform("count") > 1]
    for lr, group in grid.groupby("lr", sort=False):
        falls = [drops(by_point[r.point]["test_acc"]) for r in group.itertuples()]
        monotone = all(a > b for a, b in zip(falls, falls[1:]))
        steady += monotone
        per_lr.append({"lr": float(lr), "falls": falls, "monotone": monotone})
    accuracy = float(sweep["final_test_acc"].median())
    n = len(per_lr)
    return {"per_lr": per_lr, "steady": steady, "batch_sizes": sorted(grid["batch_size"].unique()),
            "median": measured(accuracy, n_test),
            "verdict": "holds" if steady == n else "partly" if steady else "differs"}


def learning_rate_speed(sweep, by_point, n_test):
    """Per batch size, the first epoch each learning rate reaches TARGET_TEST_ACCURACY (highest rate first),
    and whether the highest falls fastest at first and ends lowest."""
    slower, faster_start, lowest_end, per_batch = 0, 0, 0, []
    for batch, group in sweep.groupby("batch_size", sort=False):
        group = group[group["lr"] >= LOW_LR] if (group["lr"] >= LOW_LR).sum() > 1 else group
        reach = []
        for r in group.sort_values("lr", ascending=False).itertuples():
            c = by_point[r.point]
            hit = c[c["test_acc"] >= TARGET_TEST_ACCURACY]
            reach.append((float(r.lr), int(hit["epoch"].iloc[0]) if len(hit) else None, float(c["train_loss"].iloc[0]),
                          float(c["train_loss"].iloc[-1])))
        epochs = [e if e is not None else math.inf for _, e, _, _ in reach]
        slower += all(a <= b for a, b in zip(epochs, epochs[1:]))
        faster_start += reach[0][2] == min(first for _, _, first, _ in reach)
        lowest_end += reach[0][3] == min(last for _, _, _, last in reach)
        per_batch.append({"batch_size": int(batch), "reach": [(lr, e) for lr, e, _, _ in reach]})
    n = len(per_batch)
    low = [{"lr": float(r.lr), "batch_size": int(r.batch_size), "final": measured(r.final_test_acc, n_test),
            "epochs": int(by_point[r.point]["epoch"].iloc[-1])} for r in sweep[sweep["lr"] < LOW_LR].itertuples()]
    saturates = lowest_end < n  # the highest rate ends above another's training loss somewhere
    verdict = ("holds" if slower == n and faster_start == n and saturates else "partly" if slower or faster_start
               else "differs")
    return {"per_batch": per_batch, "slower": slower, "faster_start": faster_start, "lowest_end": lowest_end,
            "saturates": saturates, "low_rates": low, "verdict": verdict}


def render(v, claims, section):
    """Section 3: the baselines, the sweep (the homework's `section` named) and each claim of `claims`."""
    n_test, sweep, by_point, comparison = v["n_test"], v["sweep"], v["by_point"], v["comparison"]
    rows = [{"model": m["label"], "epochs": int(m["history"]["epoch"].iloc[-1]),
             "final test accuracy (95 % interval)": short_interval(measured(m["final_test_acc"], n_test))}
            for m in v["baselines"]]
    compared = ""
    if comparison:
        names = [comparison["first"]["label"], comparison["second"]["label"]]
        compared = html.paragraph(
            f"{capitalised(names[0])}: {with_interval(comparison['measured'])}. On the same test images, image by "
            "image (each model's predictions as the transfer stage records them): "
            + (difference_words(comparison["paired"], *names) if comparison["paired"] else
               against(comparison["measured"], comparison["second"]["final_test_acc"], n_test, names[1]) + NOT_PAIRED)
            + ".")
    curves = [{"epoch": int(r["epoch"]), "model": m["label"], "test accuracy": r["test_acc"]}
              for m in v["baselines"] for r in m["history"].to_dict("records")]
    order = [point_label(r.batch_size, r.lr) for r in sweep.itertuples()]
    label_of = dict(zip(sweep["point"], order))
    coverage = (f"All {v['homework_points']} of the homework's (batch size, learning rate) points are in the sweep."
                if not v["missing"] else f"The homework's points missing from this sweep: {v['missing']}.")
    table = [{"batch size": int(r.batch_size), "learning rate": f"{float(r.lr):g}",
              "final test accuracy (95 % interval)": short_interval(measured(r.final_test_acc, n_test)),
              "best test accuracy (95 % interval)": short_interval(measured(r.best_test_acc, n_test)),
              "best epoch": int(r.best_epoch),
              "lowest training loss": r.min_train_loss} for r in sweep.itertuples()]
    view_rows = [{"point": label_of[p], "epoch": int(r["epoch"]), "measure": measure, "value": value}
                 for p in sweep["point"] for r in by_point[p].to_dict("records")
                 for measure, value in zip(SWEEP_MEASURES, (r["train_loss"], r["test_loss"], 1 - r["test_acc"]))]
    view = html.chart("sweep", {
        "title": "The sweep: one colour per (batch size, learning rate), log scales", "data": {"values": view_rows},
        "facet": {"column": {"field": "measure", "type": "nominal", "title": None, "sort": list(SWEEP_MEASURES)}},
        "resolve": {"scale": {"y": "independent"}},
        "spec": {"width": 300, "height": 240, "mark": {"type": "line", "point": {"size": 12}},
                 "encoding": {"x": {"field": "epoch", "type": "quantitative", "title": "epoch"},
                              "y": {"field": "value", "type": "quantitative", "title": None,
                                    "scale": {"type": "log", "nice": False, "padding": 8}},
                              "color": {"field": "point", "type": "nominal", "title": "point",
                                        "scale": {"domain": order,
                                                  "scheme": "tableau10" if len(order) <= 10 else "tableau20"},
                                        "sort": order, "legend": {"orient": "bottom", "columns": 5,
                                                                  "labelLimit": 200}},
                              "tooltip": [{"field": "point"}, {"field": "epoch"}, {"field": "measure"},
                                          {"field": "value", "format": ".4g"}]}}})
    labels = [m["label"] for m in v["baselines"]]
    return html.section("3. The MNIST CNN", [
        html.heading(capitalised(" and ".join(labels))),
        html.paragraph(f"{capitalised(number_word(len(labels)))} runs of the same network and hyper-parameters from "
                       f"different seeds, on the {n_test:,} test images."),
        html.table(rows), compared,
        html.line_chart("models-test-acc", curves, "epoch", "test accuracy", "model", "Test accuracy per epoch"),
        html.heading(f"The sweep of the homework's section {section.split()[0]}"),
        html.paragraph(f"{coverage} Accuracies on the {n_test:,} test images, with their 95 % Wilson intervals."),
        html.table(table), view,
        render_over_fitting(v["claims"]["over_fitting"], claims["over_fitting"], n_test),
        render_batch_stability(v["claims"]["batch_size"], claims["batch_size"], n_test),
        render_learning_rate_speed(v["claims"]["learning_rate"], claims["learning_rate"])])


def render_over_fitting(j, claim, n_test):
    rising, n, stagnant = j["rising"], j["points"], j["stagnant"]
    evidence = (f"On {count_of(len(rising), n, 'points')} ({'; '.join(rising) or 'none'}) the test loss ends at least "
                f"{100 * (OVER_FIT_RISE - 1):.0f} % above its minimum while the training loss keeps falling: "
                f"over-fitting. On {stagnant} of those {len(rising)}, no difference between the last epoch's test "
                f"accuracy and the best epoch's is detectable on the {n_test:,} test images{NOT_PAIRED}: it stagnates "
                "rather than falls.")
    falling = len(rising) - stagnant
    why = ("longer training over-fits the loss while the accuracy stagnates." if j["verdict"] == "holds" else
           f"{count_of(len(rising), n, 'points')} over-fit within these epochs; on "
           + (f"{falling} of them the accuracy falls beyond noise." if falling else "those the accuracy stagnates.")
           if j["verdict"] == "partly" else "no point over-fits within these epochs.")
    return html.claim(claim["section"], claim["text"], evidence, j["verdict"], why)


def render_batch_stability(j, claim, n_test):
    m = j["median"]
    per_lr = [f"lr {r['lr']:g}: " + ", ".join(f"{100 * f:.2f}" for f in r["falls"])
              + (" (falling with batch size)" if r["monotone"] else "") for r in j["per_lr"]]
    evidence = (f"The sum of the epoch-to-epoch falls of test accuracy, in points, for batch sizes "
                f"{', '.join(str(b) for b in j['batch_sizes'])}: " + "; ".join(per_lr)
                + f". A single epoch's accuracy near {percent(m['accuracy'])} is known to "
                  f"±{50 * (m['high'] - m['low']):.2f} points (95 % Wilson, {n_test:,} images), so single falls below "
                  "that are sampling noise.")
    why = f"larger batches fluctuate less at {count_of(j['steady'], len(per_lr), 'learning rates')}."
    return html.claim(claim["section"], claim["text"], evidence, j["verdict"], why)


def render_learning_rate_speed(j, claim):
    n = len(j["per_batch"])
    per_batch = [f"batch {b['batch_size']}: " + ", ".join(f"lr {lr:g} {'epoch ' + str(e) if e is not None else 'never'}"
                                                          for lr, e in b["reach"]) for b in j["per_batch"]]
    low = "".join(f" At lr {r['lr']:g} (batch {r['batch_size']}) the test accuracy is {with_interval(r['final'])} "
                  f"after {r['epochs']} epochs." for r in j["low_rates"])
    evidence = (f"The first epoch at {percent(TARGET_TEST_ACCURACY, 0)} test accuracy: " + "; ".join(per_batch)
                + f". The highest learning rate has the lowest training loss after the first epoch at "
                  f"{count_of(j['faster_start'], n, 'batch sizes')}." + low)
    why = (f"lower learning rates take longer at {count_of(j['slower'], n, 'batch sizes')}, and the highest falls "
           f"fastest at first at {count_of(j['faster_start'], n, 'batch sizes')}; it also ends with the lowest "
           f"training loss at {count_of(j['lowest_end'], n, 'batch sizes')}, so within these epochs it "
           + ("does not saturate before the lower rates do." if not j["saturates"] else
              "saturates above a lower rate at some."))
    return html.claim(claim["section"], claim["text"], evidence, j["verdict"], why)


def finding(v):
    parts = v["claims"]
    over, batch, speed = parts["over_fitting"], parts["batch_size"], parts["learning_rate"]
    return Finding("Problem 3 (3)",
                   "over-fitting with longer training; larger batches steadier; low learning rates slower",
                   f"{len(over['rising'])} of {over['points']} points over-fit; steadier with batch size at "
                   f"{batch['steady']} of {len(batch['per_lr'])} learning rates; lower lr slower at {speed['slower']} "
                   f"of {len(speed['per_batch'])} batch sizes", v["verdict"])
