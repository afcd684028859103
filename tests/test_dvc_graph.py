"""The pipeline's dependency graph is exact: every stage depends on each project module its command
imports (directly or not) and no other, and on every params key it reads."""
import ast
import dataclasses
import importlib
import shlex
from pathlib import Path

import pytest

from stages.lib.params import Section
from tests.conftest import ROOT


def module_file(name):
    """The file of a project module, or None if `name` is not one (e.g. a function imported from one)."""
    path = ROOT / Path(*name.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def imported_modules(path):
    """Project modules (stages.*) that the file imports anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "stages"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "stages":
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names
                      if module_file(f"{node.module}.{alias.name}")}
    return found


def is_docstring_only(path):
    body = ast.parse(path.read_text()).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def import_closure(module):
    """Files of every project module that running `python -m module` executes, as repo-relative paths.
    Package __init__ files that hold only a docstring run no code and are left out."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        path = module_file(name)
        if path is None or path in seen:
            continue
        seen.add(path)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # its packages run first
        todo += imported_modules(path)
    return {str(p.relative_to(ROOT)) for p in seen if not (p.name == "__init__.py" and is_docstring_only(p))}


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """Every stage of dvc.yaml as DVC resolves it (foreach and matrix expanded), read in a copy."""
    import shutil
    import subprocess

    from dvc.repo import Repo

    copy = tmp_path_factory.mktemp("graph")
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, copy / name)
    shutil.copytree(ROOT / ".dvc", copy / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
    return list(Repo(str(copy)).index.stages)


def code_deps(stage):
    return {str(d.def_path) for d in stage.deps if str(d.def_path).endswith(".py")}


def code_folders(stage):
    """The folders of project code a stage depends on whole (check_params: `stages`)."""
    return {str(d.def_path) for d in stage.deps if (ROOT / str(d.def_path)).is_dir() and str(d.def_path).startswith("stages")}


def stage_closure(module):
    """import_closure, and for check_params, which imports every stage module it finds, theirs too."""
    needed = import_closure(module)
    if module == "stages.check_params":
        from stages.check_params import stage_modules

        for stage_module in stage_modules():
            needed |= import_closure(stage_module.__name__)
    return needed


def params_deps(stage):
    return {key for d in stage.deps if hasattr(d, "params") and d.params for key in d.params}


def test_the_library_package_init_runs_no_code():
    assert is_docstring_only(ROOT / "stages/lib/__init__.py"), "stages/lib/__init__.py runs code: add it to the deps"


def test_every_stage_depends_on_exactly_the_code_it_runs(stages):
    problems = []
    for stage in stages:
        argv = shlex.split(stage.cmd)
        assert argv[:2] == ["python", "-m"], f"{stage.name}: cmd must be `python -m stages.<module>`"
        needed, declared, folders = stage_closure(argv[2]), code_deps(stage), code_folders(stage)
        covered = {f for f in needed if any(Path(f).is_relative_to(folder) for folder in folders)}
        problems += [f"{stage.name}: missing dep {f}" for f in sorted(needed - declared - covered)]
        problems += [f"{stage.name}: dep {f} is code it never runs" for f in sorted(declared - needed)]
    assert not problems, "\n".join(problems)


def leaves(node, prefix):
    """The dotted keys of every value under a loaded section."""
    for name in type(node).model_fields:
        value, key = getattr(node, name), f"{prefix}.{name}" if prefix else name
        children = value.items() if isinstance(value, dict) else [(None, value)]
        if not any(isinstance(child, Section) for _, child in children):
            yield key
        for child_name, child in children:
            if isinstance(child, Section):
                yield from leaves(child, key if child_name is None else f"{key}.{child_name}")


def held_objects(value):
    """Everything a stage's run object holds: dataclass fields, sections, list and dict members."""
    yield value
    if dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            yield from held_objects(getattr(value, field.name))
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from held_objects(item)


def recorded_reads(module, args, monkeypatch):
    """The params keys (dotted, to the leaf) that module.read_params(params.yaml, *args) reads: the values
    it reads one by one, and every value under a loaded section it passes on whole."""
    prefixes = {}
    real_load = module.load_params

    def load_and_map(schema, path):
        loaded = real_load(schema, path)

        def walk(node, prefix):
            prefixes[id(node)] = prefix
            for name in type(node).model_fields:
                value, key = object.__getattribute__(node, name), f"{prefix}.{name}" if prefix else name
                children = value.items() if isinstance(value, dict) else [(None, value)]
                for child_name, child in children:
                    if isinstance(child, Section):
                        walk(child, key if child_name is None else f"{key}.{child_name}")

        walk(loaded, "")
        return loaded

    reads = set()

    def recording(self, name):
        value = object.__getattribute__(self, name)
        if id(self) in prefixes and name in type(self).model_fields:
            values = value.values() if isinstance(value, dict) else [value]
            if not any(isinstance(v, Section) for v in values):
                prefix = prefixes[id(self)]
                reads.add(f"{prefix}.{name}" if prefix else name)
        return value

    monkeypatch.setattr(module, "load_params", load_and_map)
    monkeypatch.setattr(Section, "__getattribute__", recording)
    run = module.read_params(ROOT / "params.yaml", *args)
    monkeypatch.undo()
    for held in held_objects(run):
        if isinstance(held, Section) and id(held) in prefixes:
            reads |= set(leaves(held, prefixes[id(held)]))
    return reads


def test_every_params_key_a_stage_reads_is_in_its_params(stages, monkeypatch):
    problems = []
    for stage in stages:
        argv = shlex.split(stage.cmd)
        module = importlib.import_module(argv[2])
        declared = params_deps(stage)
        if not hasattr(module, "read_params"):  # reads no params (the report), or the whole file (check_params)
            assert not declared or declared == {"params.yaml"} or argv[2] == "stages.check_params", stage.name
            continue
        positional = [a for a in argv[3:4] if not a.startswith("-")]
        reads = recorded_reads(module, positional, monkeypatch)
        assert reads, f"{stage.name}: read_params reads nothing"
        problems += [f"{stage.name}: reads params '{key}' that dvc.yaml does not list"
                     for key in sorted(reads)
                     if not any(key == d or key.startswith(d + ".") for d in declared)]
    assert not problems, "\n".join(problems)


def test_the_recorder_sees_what_a_stage_reads(monkeypatch):
    from stages import robustness, train
    reads = recorded_reads(train, ["model2"], monkeypatch)
    assert {"train.models.model2.seed", "train.lr", "model.channels", "threads"} <= reads  # read, and held whole
    assert not any(key.startswith("train.models.model1") for key in reads)
    reads = recorded_reads(robustness, ["adversarial_training"], monkeypatch)
    assert {"robustness.pgd.restarts", "robustness.models.adversarial_training.n_images", "attack.step_size",
            "attack.max_steps"} <= reads
    assert not {"attack.gallery.untargeted", "attack.model", "robustness.models.model1.n_images",
                "robustness.transfer.n_images"} & reads  # another model's evaluation, the transfer table


def test_git_holds_every_uncached_output_and_ignores_every_cached_one(stages):
    # a stale .gitignore (DVC writes one beside each cached output) would keep a committed output, e.g. a
    # figures folder, out of every clone; a cached output that git does not ignore would be committed twice
    import subprocess

    problems = []
    for stage in stages:
        for out in stage.outs:
            path = str(out.def_path)
            probe = path if Path(path).suffix else f"{path}/figure.png"  # a folder: any file in it
            ignored = subprocess.run(["git", "check-ignore", "-q", probe], cwd=ROOT).returncode == 0
            if ignored == (not out.use_cache):
                problems.append(f"{stage.name}: {path} is {'cache: false but git-ignored' if ignored else 'cached but not git-ignored'}")
    assert not problems, "\n".join(problems)


def test_the_committed_lock_names_no_stage_that_dvc_yaml_lacks(stages):
    # a stage renamed or removed from dvc.yaml leaves an orphan entry in dvc.lock that no command reads or
    # removes: stale provenance for a reader of the lock (a stage not yet run is absent, which `dvc status`
    # reports; tests/test_pipeline.py checks that a whole run locks exactly the stages of dvc.yaml)
    import yaml

    locked = set(yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"])
    assert not locked - {stage.name for stage in stages}, f"orphans in dvc.lock: {sorted(locked - {s.name for s in stages})}"
