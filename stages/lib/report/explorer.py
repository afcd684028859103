"""Section 4's ε explorer (plots/explorer/explorer.json, from the stage explorer): inputs bound to Vega-Lite
parameters choose ε, a test digit (those in the homework's gallery marked) and the model the images are made
on; for the choice it shows the original, the perturbation, the PGD image within ε and every model's answer
with its probability, and below, each model's answer at every ε."""
import json
import math

from stages.lib import html_page as html

START_EPSILON = 0.1  # the slider's first position: where model 1 starts to be fooled
ANSWER_COLOURS = ["#1f6fb4", "#e66101"]  # right, wrong: blue, orange, told apart without red-green vision
PANELS = ["original", "perturbation", "adversarial"]


def judge(data):
    """Per model of the explorer's record, the ε by which half of its digits' images made on the first source
    fool it: {model: ε, or None where not within the grid}."""
    labels = {d["index"]: d["label"] for d in data["digits"]}
    first_wrong = {}  # (model, digit): the smallest ε at which the model answers wrong on the first source's images
    for r in data["images"]:
        for model, predicted in zip(data["models"], r["predicted"]):
            if r["source"] == data["sources"][0] and predicted != labels[r["digit"]]:
                first_wrong[model, r["digit"]] = min(first_wrong.get((model, r["digit"]), math.inf), r["epsilon"])
    halves = {}
    for model in data["models"]:
        half = sorted(first_wrong.get((model, d), math.inf) for d in labels)[(len(labels) - 1) // 2]
        halves[model] = half if half < math.inf else None
    return {"data": data, "halves": halves}


def render(v, labels, gallery):
    """The explorer with its introduction; `labels` {model: label}, `gallery` the homework's gallery indices."""
    data, grid = v["data"], v["data"]["epsilon"]
    attack = data["attack"]
    names = [labels[m] for m in data["models"]]
    digits = {d["index"]: d["label"] for d in data["digits"]}
    halves = [f"{labels[m]} by ε = {half:g}" if half is not None else f"{labels[m]} not by ε = {grid[-1]:g}"
              for m, half in v["halves"].items()]
    step = grid[1] - grid[0]
    chosen = f"datum.digit == digit && datum.source == made_on && abs(datum.epsilon - eps) < {step / 2:g}"
    answers = [{"lookup": "digit", "from": {"data": {"name": "digits"}, "key": "index", "fields": ["label"]}},
               {"calculate": json.dumps(names), "as": "model"},  # the labels as an expression: an array of strings
               {"flatten": ["model", "predicted", "probability"]},
               {"calculate": "datum.predicted == datum.label ? 'right' : 'wrong'", "as": "answer"},
               {"calculate": "'says ' + datum.predicted + ' (' + format(datum.probability, '.1%') + ')'", "as": "says"}]
    answer_colour = {"field": "answer", "type": "nominal", "title": "answer",
                     "scale": {"domain": ["right", "wrong"], "range": ANSWER_COLOURS}}
    model_axis = {"field": "model", "type": "nominal", "sort": names, "title": None, "axis": {"labelLimit": 240}}
    images = {
        "width": 3 * 150, "height": 150, "view": {"stroke": None},
        "transform": [{"filter": chosen},
                      {"lookup": "digit", "from": {"data": {"name": "digits"}, "key": "index", "fields": ["original"]}},
                      {"fold": PANELS, "as": ["panel", "url"]}],
        "mark": {"type": "image", "width": 140, "height": 140, "align": "center", "baseline": "middle", "smooth": False},
        "encoding": {"x": {"field": "panel", "type": "nominal", "sort": PANELS, "title": None,
                           "axis": {"labelAngle": 0, "ticks": False, "domain": False, "labelFontSize": 12,
                                    "labelExpr": "datum.value == 'original' ? 'original' : datum.value + ', ε = ' "
                                                 "+ format(eps, '.3~f')"}},
                     "y": {"value": 75}, "url": {"field": "url", "type": "nominal"}}}
    bars = {
        "width": 220, "height": 150, "title": "each model's answer on the adversarial image",
        "transform": [{"filter": chosen}, *answers],
        "encoding": {"y": model_axis, "x": {"field": "probability", "type": "quantitative", "scale": {"domain": [0, 1]},
                                            "axis": {"format": "%", "tickCount": 5}, "title": "its probability"}},
        "layer": [{"mark": "bar", "encoding": {"color": answer_colour}},
                  {"mark": {"type": "text", "align": "left", "dx": 4}, "encoding": {"text": {"field": "says"}}}]}
    every_epsilon = {
        "width": 800, "height": 110, "title": "each model's answer at every ε (the box: the slider's ε; point at a "
                                              "cell for the digit it reads)",
        "transform": [{"filter": "datum.digit == digit && datum.source == made_on"}, *answers],
        "encoding": {"y": model_axis, "x": {"field": "epsilon", "type": "ordinal", "title": "ε ([0, 1] units)",
                                            "axis": {"labelAngle": 0, "format": ".3~f"}}},
        "layer": [{"mark": {"type": "rect", "stroke": "white"},
                   "encoding": {"color": answer_colour,
                                "tooltip": [{"field": "model"}, {"field": "epsilon", "title": "ε"}, {"field": "says"}]}},
                  {"transform": [{"filter": f"abs(datum.epsilon - eps) < {step / 2:g}"}],
                   "mark": {"type": "rect", "filled": False, "stroke": "black", "strokeWidth": 2}}]}
    spec = {
        "datasets": {"explorer": data["images"], "digits": data["digits"]}, "data": {"name": "explorer"},
        "params": [
            {"name": "eps", "value": min(grid, key=lambda e: abs(e - START_EPSILON)),
             "bind": {"input": "range", "min": grid[0], "max": grid[-1], "step": step, "name": "ε ([0, 1] units) "}},
            {"name": "digit", "value": data["digits"][0]["index"],
             "bind": {"input": "select", "options": list(digits), "name": "test digit ",
                      "labels": [f"index {i}: a {label}" + (" (the homework's gallery)" if i in gallery else "")
                                 for i, label in digits.items()]}},
            {"name": "made_on", "value": data["sources"][0],
             "bind": {"input": "radio", "options": data["sources"], "labels": [labels[s] for s in data["sources"]],
                      "name": "images made on "}}],
        "vconcat": [{"hconcat": [images, bars], "spacing": 30}, every_epsilon]}
    return (html.heading("Explore: the attack as ε grows")
            + html.paragraph(
                f"Choose one of {len(digits)} test digits ({sum(i in gallery for i in digits)} from the homework's "
                "gallery) and the model the adversarial images are made on, and move the slider. The adversarial image "
                f"is PGD within ε on that model ({attack['steps']} steps of {attack['step_size']:g} from one random "
                "start, every step taken; ε in [0, 1] pixel-intensity units, so 0.1 is a tenth of the range from black "
                "to white). Only the chosen model is attacked; every other model sees the same images, a transfer. PGD "
                "may change every pixel by up to ε, not a few pixels by much. The perturbation panel is scaled to ε: "
                "mid-grey where a pixel did not change, white or black where it changed by +ε or −ε, so it shows where "
                "and which way the pixels moved at any ε, not how far; the images show 16 grey levels. The bars give "
                "every model's answer on the adversarial image and how sure it is (blue: the true label; orange: a "
                f"wrong one). On the images made on {labels[data['sources'][0]]}, half of these digits' images fool "
                + ", ".join(halves) + ".")
            + html.chart("explorer", spec))
