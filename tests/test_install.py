"""The pinned install (constraints/README.md): ``constraints/lock.txt`` pins every dependency
that ``pyproject.toml`` names to one exact version within its range, leaving torch to
``constraints/cpu.txt``, and this environment holds exactly the lock's versions, so an
environment that drifted from what the tests passed with fails here."""

from __future__ import annotations

import re
import tomllib
from collections import defaultdict
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "constraints" / "lock.txt"
LEFT_OUT = re.compile(r"^(torch|triton|nvidia-.+|cuda-.+)$")  # the machine's torch build


def requirements(path: Path) -> list[Requirement]:
    """The requirement lines of a pip requirements/constraints file."""
    lines = (line.split(" #")[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("#")]


def declared() -> list[Requirement]:
    """Every requirement of pyproject.toml: dependencies and every extra, but the project's
    references to its own extras."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    named = project["dependencies"] + [requirement for extra in
                                       project["optional-dependencies"].values()
                                       for requirement in extra]
    return [Requirement(text) for text in named
            if canonicalize_name(Requirement(text).name) != canonicalize_name(project["name"])]


def pinned(requirement: Requirement) -> str:
    (specifier,) = requirement.specifier
    return specifier.version


def test_the_lock_pins_every_dependency_of_pyproject_within_its_range() -> None:
    pins = defaultdict(list)
    for pin in requirements(LOCK):
        specifiers = list(pin.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", f"not exact: {pin}"
        assert not LEFT_OUT.match(canonicalize_name(pin.name)), f"{pin}: left to the machine"
        pins[canonicalize_name(pin.name)].append(pin)
    assert len(pins) > 50
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        if name == "torch":
            (cpu,) = requirements(REPO / "constraints" / "cpu.txt")
            assert canonicalize_name(cpu.name) == "torch"
            assert requirement.specifier.contains(pinned(cpu)), (requirement, cpu)
            continue
        assert pins[name], f"{requirement} (pyproject.toml) is not in {LOCK}: run `make lock`"
        for pin in pins[name]:
            assert requirement.specifier.contains(pinned(pin), prereleases=True), \
                f"{pin} is outside pyproject.toml's {requirement}: run `make lock`"


def test_this_environment_holds_exactly_the_locked_versions() -> None:
    drift = []
    for pin in requirements(LOCK):
        if pin.marker is not None and not pin.marker.evaluate():
            continue  # another platform's or Python's
        try:
            installed = metadata.version(pin.name)
        except metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != pinned(pin):
            drift.append(f"{pin.name} {installed} (locked: {pinned(pin)})")
    assert not drift, f"this environment drifted from {LOCK}; run `make install`: {drift}"
