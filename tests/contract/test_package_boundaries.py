"""The package rules of docs/DESIGN.md, read from the source (no import is run):

- contract/ is documents and rules only: it imports no other package of ours, no Kafka client, no
  web framework, and sets up no logging;
- kafka_io/ (all Kafka I/O) builds on contract/ only; service_kit/ (logging setup, the internal
  secret's route guard) likewise;
- a component (generator, merger, Spark job, gateway) imports contract/, kafka_io/, service_kit/
  and itself, never another component nor devicestream/;
- each image copies every package of ours that what it runs imports."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = {"contract", "kafka_io", "service_kit", "services", "spark_job", "devicestream", "bench", "tests"}
SHARED = {"contract", "kafka_io", "service_kit"}
COMPONENTS = ("services/generator", "services/merger", "services/gateway", "spark_job")


@cache
def imports_of(path: Path) -> frozenset[str]:
    """Every module `path` imports (anywhere in it: lazy imports count), as dotted names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return frozenset(names)


def files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def ours(names: frozenset[str]) -> set[str]:
    return {n for n in names if n.split(".")[0] in OURS}


def test_contract_is_documents_and_rules_only() -> None:
    for path in files("contract"):
        names = imports_of(path)
        assert {n.split(".")[0] for n in ours(names)} <= {"contract"}, path
        banned = {n for n in names if n.split(".")[0] in ("aiokafka", "fastapi", "starlette", "uvicorn")}
        assert not banned, f"{path.relative_to(ROOT)} imports {sorted(banned)}: I/O is kafka_io/ or service_kit/"
        setup = re.search(r"basicConfig|logging\.config|StreamHandler|\.setLevel\(", path.read_text())
        assert setup is None, f"{path.relative_to(ROOT)} sets up logging: that is service_kit/logs.py's"


@pytest.mark.parametrize("package", ["kafka_io", "service_kit"])
def test_shared_runtime_builds_on_contract_only(package: str) -> None:
    for path in files(package):
        assert {n.split(".")[0] for n in ours(imports_of(path))} <= {"contract", package}, path


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_a_component_imports_only_the_shared_packages_and_itself(component: str) -> None:
    own = component.replace("/", ".")
    for path in files(component):
        foreign = {n for n in ours(imports_of(path)) if n.split(".")[0] not in SHARED and not n.startswith(own)}
        # `services` alone is the namespace package both services live in
        foreign.discard("services")
        assert not foreign, f"{path.relative_to(ROOT)} imports {sorted(foreign)}"


def _copied(dockerfile: str) -> set[str]:
    text = (ROOT / "docker" / dockerfile).read_text()
    return {m.group(1) for m in re.finditer(r"^COPY (\w+) \1$", text, re.M)}


def _needed(start: list[str]) -> set[str]:
    """The top-level packages of ours that the modules in `start` (folders) import, transitively."""
    seen: set[Path] = set()
    todo = [p for folder in start for p in files(folder)]
    needed: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in ours(imports_of(path)):
            needed.add(name.split(".")[0])
            parts = name.split(".")
            for n in range(len(parts), 0, -1):
                module = ROOT.joinpath(*parts[:n])
                candidate = module.with_suffix(".py") if module.with_suffix(".py").exists() else module / "__init__.py"
                if candidate.exists():
                    todo.append(candidate)
                    break
    return needed


@pytest.mark.parametrize(
    ("dockerfile", "runs"),
    [
        ("services.Dockerfile", ["services", "devicestream/compose_secrets.py"]),
        ("spark.Dockerfile", ["spark_job"]),
    ],
)
def test_each_image_copies_the_packages_it_imports(dockerfile: str, runs: list[str]) -> None:
    starts = [r for r in runs if not r.endswith(".py")]
    needed = _needed(starts) | {r.split("/")[0] for r in runs}
    for single in (r for r in runs if r.endswith(".py")):
        needed |= {n.split(".")[0] for n in ours(imports_of(ROOT / single))}
    missing = needed - _copied(dockerfile)
    assert not missing, f"docker/{dockerfile} does not COPY {sorted(missing)}"
