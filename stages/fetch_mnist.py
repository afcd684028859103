"""Stage fetch_mnist: MNIST from params `data.source` into <out>/{train,test}.pt.

Also writes metrics/data.json (the source actually used, whether its files are the official MNIST,
the split sizes) and plots/data/class_counts.csv (images per digit in each split).

`--import DIR` is not the stage: it checks four MNIST files you already have (plain or .gz) against
the official checksums and puts them in torchvision's cache under data.cache_dir, where the stage
(data.source auto or mnist) then finds them without a network.
"""
from stages.lib import cli
from stages.lib.data import SPLITS, class_counts, save_split, split_path
from stages.lib.io import staged_outputs, write_csv, write_json
from stages.lib.mnist import import_mnist, load_mnist
from stages.lib.params import load_params

METRICS = "metrics/data.json"
CLASS_COUNTS = "plots/data/class_counts.csv"


def read_params(params):
    """The plain values this stage uses; dvc.yaml lists exactly these keys."""
    data = params.data
    return {"source": data.source, "cache_dir": data.cache_dir, "timeout": data.download_timeout,
            "seed": data.seed}


def main(argv=None):
    parser = cli.parser(__doc__)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", help="the folder to write train.pt and test.pt to")
    target.add_argument("--import", dest="import_dir", metavar="DIR",
                        help="install the four MNIST files of DIR in data.cache_dir, then exit")
    args = parser.parse_args(argv)
    p = read_params(load_params(args.params))
    if args.import_dir:
        folder = import_mnist(args.import_dir, p["cache_dir"])
        print(f"fetch_mnist: the official MNIST files are in {folder}; `dvc repro` uses them (data.source auto or mnist)")
        return
    splits, used, official = load_mnist(p["source"], p["cache_dir"], p["timeout"], p["seed"])
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
