"""Params section `sweep` (Problem 3): the batch-size x learning-rate grid, its extra points and how
each point trains; read by the sweep stage (one point each) and by sweep_summary (the whole grid)."""
from typing import Annotated

from pydantic import Field, field_validator

from stages.lib.params import Count, Section, Seed, unique
from stages.lib.training import Epochs, LearningRate, Momentum


def point_name(batch_size, lr):
    """A sweep point's name; dvc.yaml spells it ${item.batch_size}-${item.lr} (the same for floats)."""
    return f"{batch_size}-{lr}"


class Grid(Section):
    batch_size: Annotated[list[Count], Field(min_length=1)]
    lr: Annotated[list[LearningRate], Field(min_length=1)]

    @field_validator("batch_size", "lr")
    @classmethod
    def _no_repeats(cls, value):
        return unique(value)

    def points(self):
        return [(b, lr) for b in self.batch_size for lr in self.lr]


class SweepSection(Grid):
    extra: Grid
    epochs: Epochs
    seed: Seed
    momentum: Momentum
    eval_batch_size: Count

    @field_validator("extra")
    @classmethod
    def _extra_points_are_new(cls, extra, info):
        grid = {(b, lr) for b in info.data.get("batch_size", []) for lr in info.data.get("lr", [])}
        repeated = [point_name(*p) for p in extra.points() if p in grid]
        if repeated:
            raise ValueError(f"repeats the grid's point {repeated[0]}; remove it from 'sweep.extra' "
                             "(DVC would refuse the two stages as overlapping outputs)")
        return extra

    def points(self):
        """Every (batch size, lr) of the sweep: the grid, then the extra points."""
        return super().points() + self.extra.points()
