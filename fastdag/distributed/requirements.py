"""Checking a task's ``requires`` against what this worker has installed.

A worker never installs anything at run time (that would let a graph run
arbitrary installers on every host); it refuses a task whose requirements
it lacks, with an error naming the requirement and what it found instead.
``packaging`` is used when present; otherwise simple specifiers
(``name``, ``name>=1.2``, ``==``, ``!=``, ``<``, ``<=``, ``>``, ``~=``,
comma-separated) are compared on their numeric release parts.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import re

_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*?)\s*(?:;.*)?$")
_SPEC = re.compile(r"^\s*(==|!=|<=|>=|~=|<|>)\s*([A-Za-z0-9.*+!_-]+)\s*$")


@functools.lru_cache(maxsize=256)
def unmet(requirement: str) -> str | None:
    """None if ``requirement`` is satisfied here, else why not (for the error message)."""
    match = _REQ.match(requirement)
    if not match:
        return f"cannot parse requirement {requirement!r}"
    name, specs = match.group(1), match.group(2)
    version = _installed_version(name)
    if version is None:
        return f"{name} is not installed"
    if not specs:
        return None
    try:
        ok = _satisfies_packaging(version, specs)
    except ImportError:
        ok = _satisfies_simple(version, specs)
    if ok is None:
        return f"cannot parse version specifier {specs!r} of {requirement!r}"
    return None if ok else f"{name} {version} is installed, {requirement!r} is required"


def check(requires: tuple[str, ...]) -> list[str]:
    """The reasons, one per unmet requirement (empty when all are met)."""
    return [reason for req in requires if (reason := unmet(req)) is not None]


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        pass
    # An importable module without distribution metadata (e.g. a path install).
    module = name.replace("-", "_")
    if importlib.util.find_spec(module) is not None:
        return "0"
    return None


def _satisfies_packaging(version: str, specs: str) -> bool | None:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version
    try:
        return Version(version) in SpecifierSet(specs)
    except (InvalidSpecifier, InvalidVersion):
        return None


def _release(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def _satisfies_simple(version: str, specs: str) -> bool | None:
    have = _release(version)
    for spec in specs.split(","):
        match = _SPEC.match(spec)
        if not match:
            return None
        op, want_text = match.groups()
        want = _release(want_text)
        width = max(len(have), len(want))
        a = have + (0,) * (width - len(have))
        b = want + (0,) * (width - len(want))
        if op == "~=":
            ok = a >= b and have[:len(want) - 1] == want[:-1]
        else:
            ok = {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b,
                  ">": a > b, ">=": a >= b}[op]
        if not ok:
            return False
    return True
