"""Stage fetch_mnist: MNIST from params `data.source` into data/mnist/{train,test}.pt.

Also writes metrics/data.json: the source actually used, split sizes, per-class counts and the
SHA-256 of each output file.
"""
from stages.lib import config
from stages.lib.data import SPLITS, class_counts, load_mnist, save_split, split_path
from stages.lib.io import sha256, staged_outputs, write_json

DATA_DIR = "data/mnist"
METRICS = "metrics/data.json"


def read_params(params):
    source = config.text(params, "data.source")
    return {
        "source": source,
        "cache_dir": config.text(params, "data.cache_dir"),
        "timeout": config.number(params, "data.download_timeout", low=0, low_open=True),
        "seed": config.number(params, "data.seed", integer=True, low=0),
    }


def main(argv=None):
    args = config.parser(__doc__).parse_args(argv)
    p = read_params(config.load_params(args.params))
    splits, used = load_mnist(p["source"], p["cache_dir"], p["timeout"], p["seed"])
    with staged_outputs() as stage:
        data_dir = stage(DATA_DIR)
        data_dir.mkdir()
        metrics = {"source": used, "n_train": len(splits["train"][1]), "n_test": len(splits["test"][1])}
        metrics["class_counts"] = {}
        metrics["sha256"] = {}
        for split in SPLITS:
            images, labels = splits[split]
            save_split(split_path(data_dir, split), images, labels)
            metrics["class_counts"][split] = class_counts(labels)
            metrics["sha256"][f"{split}.pt"] = sha256(split_path(data_dir, split))
        write_json(stage(METRICS), metrics)
    print(f"fetch_mnist: {used}: {metrics['n_train']} train / {metrics['n_test']} test images in {DATA_DIR}/")


if __name__ == "__main__":
    config.run(main)
