"""The device check (benchmarks/gpu_check.sh) carries every package the pipeline needs that the GPU
machine's image lacks: that machine has no network, so a package left out stops `dvc repro` at the first
stage that imports it, after minutes on the GPU machine."""
import re
import tomllib
from importlib.metadata import distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = (ROOT / "benchmarks/gpu_check.sh").read_text()
# the environment markers of the device's Python: CPython 3.12 on Linux x86_64
DEVICE_ENVIRONMENT = {"implementation_name": "cpython", "platform_python_implementation": "CPython",
                      "python_version": "3.12", "python_full_version": "3.12.3", "os_name": "posix",
                      "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"}


def script_names(variable):
    """The package names a shell variable of gpu_check.sh lists."""
    listed = re.search(rf'^{variable}="([^"]*)"', SCRIPT, re.MULTILINE).group(1)
    return {canonicalize_name(name) for name in listed.split()}


def runtime_closure(image_has):
    """pyproject.toml's dependencies and, as installed here from requirements.lock, theirs (extras
    included, markers evaluated for the device), not looking inside what the image has."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    closure, todo = set(), [Requirement(spec) for spec in project]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in closure:
            continue
        closure.add(name)
        if name in image_has:
            continue
        wanted = [""] + sorted(requirement.extras)
        for spec in distribution(name).requires or []:
            dependency = Requirement(spec)
            if dependency.marker is None or any(
                    dependency.marker.evaluate({**DEVICE_ENVIRONMENT, "extra": extra}) for extra in wanted):
                todo.append(dependency)
    return closure


def test_the_device_check_carries_what_the_image_lacks_and_nothing_more():
    carried, image_has = script_names("DEVICE_NAMES"), script_names("DEVICE_HAS")
    closure = runtime_closure(image_has)
    assert closure - carried - image_has == set(), "needed on the device, neither carried nor in its image"
    assert carried - closure == set(), "carried, but nothing needs it"
    assert image_has - closure == set(), "DEVICE_HAS names a package nothing needs"
    assert carried & image_has == set()
    assert {"dvc", "pydantic", "torchattacks", "vl-convert-python"} <= carried  # what the stages import lazily too


def test_every_carried_package_is_a_locked_version():
    locked = {canonicalize_name(line.split("==")[0])
              for line in (ROOT / "requirements.lock").read_text().splitlines() if "==" in line}
    assert script_names("DEVICE_NAMES") <= locked
