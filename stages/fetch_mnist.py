"""Stage fetch_mnist: MNIST from params `data.source` into <out>/{train,test}.pt, their sha256 in
<out>/SHA256SUMS (every stage that loads them verifies it).

Also writes metrics/data.json (the source actually used, whether its files are the official MNIST,
the split sizes) and plots/data/class_counts.csv (images per digit in each split).

`--import DIR` is not the stage: it checks four MNIST files you already have (plain or .gz) against
the official checksums and puts them in torchvision's cache under data.cache_dir, where the stage
(data.source mnist) then finds them without a network.
"""
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator

from stages.lib import cli
from stages.lib.data import SPLITS, class_counts, save_split, split_path
from stages.lib.io import staged_outputs, write_csv, write_json
from stages.lib.mnist import import_mnist, load_mnist
from stages.lib.params import Section, Seed, StageParams, load_params

METRICS = "metrics/data.json"
CLASS_COUNTS = "plots/data/class_counts.csv"


class DataSection(Section):
    """Params section `data`."""
    source: Annotated[str, Field(min_length=1)]  # mnist | sample | a directory of IDX files
    cache_dir: Annotated[str, Field(min_length=1)]
    download_timeout: Annotated[float, Field(gt=0, le=3600)]  # seconds per network operation
    seed: Seed

    @field_validator("cache_dir")
    @classmethod
    def _cache_dir_is_a_directory(cls, value):
        if Path(value).exists() and not Path(value).is_dir():
            raise ValueError(f"must be a directory, but {value!r} is a file")
        return value


class Params(StageParams):
    data: DataSection


def read_params(path):
    """What this stage reads of params.yaml (all of it is listed in dvc.yaml)."""
    return load_params(Params, path).data


def main(argv=None):
    parser = cli.parser(__doc__)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", help="the folder to write train.pt and test.pt to")
    target.add_argument("--import", dest="import_dir", metavar="DIR",
                        help="install the four MNIST files of DIR in data.cache_dir, then exit")
    args = parser.parse_args(argv)
    p = read_params(args.params)
    if args.import_dir:
        folder = import_mnist(args.import_dir, p.cache_dir)
        print(f"fetch_mnist: the official MNIST files are in {folder}; `dvc repro` uses them (data.source mnist)")
        return
    splits, used, official = load_mnist(p.source, p.cache_dir, p.download_timeout, p.seed)
    counts = [{"split": split, "digit": int(digit), "count": count}
              for split in SPLITS for digit, count in class_counts(splits[split][1]).items()]
    with staged_outputs() as stage:
        out = stage(args.out)
        out.mkdir()
        for split in SPLITS:
            save_split(split_path(out, split), *splits[split])
        write_json(stage(METRICS), {"source": used, "official": official, "n_train": len(splits["train"][1]),
                                    "n_test": len(splits["test"][1])})
        write_csv(stage(CLASS_COUNTS), counts)
    print(f"fetch_mnist: {used} ({'the official MNIST' if official else 'not the official MNIST'}): "
          f"{len(splits['train'][1])} train / {len(splits['test'][1])} test images in {args.out}/")


if __name__ == "__main__":
    cli.run(main)
