"""The one unit a reader sees for perturbation budgets: the literature's [0, 1] pixel intensity. The
models see images in PIXEL_RANGE ([-1, 1], the seed's range), where a budget is twice as large; the
stages convert at the call into the attacks. The seed's own attack keeps its step in [-1, 1] units."""
from stages.lib.data import PIXEL_RANGE

UNIT_SPAN = PIXEL_RANGE[1] - PIXEL_RANGE[0]  # a budget of e in [0, 1] units is e * UNIT_SPAN for the models
UNITS = "[0, 1] pixel intensity (the models see [-1, 1], where a budget is twice this)"


def model_units(budget):
    """A budget or step in [0, 1] units as the models' pixel units (exact: a product by 2)."""
    return budget * UNIT_SPAN
