"""The report page: each part judged from its numbers, then written, in the homework's order after the
findings box; the Vega libraries inlined so that it opens offline."""
from stages.lib import html_page as html
from stages.lib.report import defences, explorer, findings, problem_1, problem_2, problem_3, problem_4

TITLE = "Neural-network foundations: results"


def build(inputs):
    """The whole page (a str) from the report's inputs (stages.lib.report.inputs.Inputs)."""
    seed, labels = inputs.seed, inputs.labels
    claims = seed["claims"]
    baselines = inputs.role("baseline")
    any_record = next(iter(inputs.evaluated.values()))["about"]
    section_4 = {"sets": inputs.sets, "predictions": inputs.predictions, "source": inputs.source,
                 "receiver": inputs.receiver}
    one = problem_1.judge(inputs.observations)
    two = problem_2.judge(inputs.xor["nonlinear"], inputs.xor["linear"], inputs.xor["history"],
                          seed["xor"]["solved_epoch"])
    three = problem_3.judge(baselines, inputs.data["n_test"], inputs.predictions, inputs.sweep, inputs.sweep_curves,
                            seed["sweep"]["points"])
    four = problem_4.judge(inputs.attacks, inputs.sets, inputs.source, inputs.receiver, seed)
    explored = explorer.judge(inputs.explorer)
    five = defences.judge(inputs.role("defence"), baselines[0] if baselines else None, inputs.evaluated,
                          inputs.robustness_transfer, inputs.anchors, section_4, labels)
    rows = [problem_1.finding(one), problem_2.finding(two), problem_3.finding(three),
            problem_4.finding(four, labels, seed), *defences.findings(five, claims)]
    body = (findings.render(inputs.data, rows)
            + problem_1.render(one, claims, inputs.loss_figures)
            + problem_2.render(two, claims, inputs.xor_figures)
            + problem_3.render(three, claims, seed["sweep"]["section"])
            + problem_4.render(four, claims, seed, labels, {**inputs.attack_figures, "transfer": inputs.transfer_figures},
                               inputs.data.get("official", False), any_record["attacks"]["minimal"])
            + explorer.render(explored, labels, seed["attack"]["untargeted"]["gallery"])
            + defences.render(five, claims))
    return html.page(TITLE, body, html.inline_script(*html.vega_bundle()))
