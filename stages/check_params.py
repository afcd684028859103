"""Stage check_params: params.yaml checked whole before any other stage runs.

Each stage validates the sections it reads when it runs, but DVC runs a stage only when a key it tracks
changes: a typo (`train: {lerning_rate: 0.5}`, an unknown section `trian:`, `dvc exp run -S
+train.lerning_rate=0.5`) would otherwise be ignored in silence. This stage tracks the whole file, so
any edit reruns it first; it refuses an unknown section or key (naming the nearest valid one) and any
value a stage would refuse, with one line and exit status 2, before DVC runs or clears any other stage.

Its one output, which every other stage depends on, does not change while the file stays valid, so a
rerun of this stage never reruns anything by itself. The schemas are the stages' own: this stage
imports every module of the `stages` package that has a `Params` schema (the keys it reads), so a new
stage module is checked with no change here, and runs none of their code.
"""
import importlib
import pkgutil
from pathlib import Path
from types import SimpleNamespace

import stages
from stages.lib import cli
from stages.lib.errors import StageError
from stages.lib.io import staged_outputs
from stages.lib.params import read_mapping, unknown_key, validate_params

VERDICT = "params.yaml: every section and key is known to a stage, and every value is valid\n"


def stage_modules():
    """Every module of the `stages` package with a `Params` schema, by name."""
    modules = (importlib.import_module(f"stages.{info.name}") for info in pkgutil.iter_modules(stages.__path__)
               if not info.ispkg)
    return [module for module in modules if hasattr(module, "Params")]


def known_sections():
    """Every top-level key some stage reads, in alphabetical order."""
    return sorted({key for stage in stage_modules() for key in stage.Params.model_fields})


def check(path):
    """Every stage's params, loaded; or one StageError line for the first unknown key or bad value."""
    sections, raw, name = known_sections(), read_mapping(path), Path(path).name  # the file parsed once
    for key in raw:
        if key not in sections:
            raise StageError(unknown_key(name, str(key), sections, "the top level"))
    return [validate_params(stage.Params, raw, name) for stage in stage_modules()]


def load_all(path="params.yaml"):
    """Every section of the params file, typed as the stages read them (the file checked whole first);
    for benchmarks and tests."""
    return SimpleNamespace(**{key: getattr(p, key) for p in check(path) for key in type(p).model_fields})


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--out", required=True, help="the file that records a valid params file")
    args = parser.parse_args(argv)
    check(args.params)
    out = Path(args.out)
    if not out.is_file() or out.read_text() != VERDICT:
        with staged_outputs() as stage:
            stage(out).write_text(VERDICT)
    print(f"check_params: {args.params} is valid for all {len(stage_modules())} stage modules")


if __name__ == "__main__":
    cli.run(main)
