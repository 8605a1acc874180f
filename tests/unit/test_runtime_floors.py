"""The committed stubs refuse to import on a runtime older than the one they were generated for, so the
dependency floors in pyproject.toml must admit no such runtime."""

import ast
import pathlib
import re
import tomllib

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _requirement(name: str) -> Requirement:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == name]
    assert len(found) == 1, f"{name} is not a single runtime dependency"
    return found[0]


def _floor(requirement: Requirement) -> Version:
    """The lowest release the specifier admits, read from its >= / == clauses (== X.Y.* means X.Y.0)."""
    floors = [Version(s.version.removesuffix(".*")) for s in requirement.specifier if s.operator in (">=", "==")]
    assert floors, f"{requirement} has no floor"
    return max(floors)


def _protobuf_gencode_versions() -> set[Version]:
    versions = set()
    for path in (ROOT / "proto").rglob("*_pb2.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "ValidateProtobufRuntimeVersion"):
                major, minor, patch, suffix = (ast.literal_eval(a) for a in node.args[1:5])
                versions.add(Version(f"{major}.{minor}.{patch}{suffix}"))
    return versions


def test_protobuf_floor_is_not_below_the_generated_code():
    declared = _protobuf_gencode_versions()
    assert declared, "no ValidateProtobufRuntimeVersion call found in proto/"
    needed = max(declared)
    requirement = _requirement("protobuf")
    assert _floor(requirement) >= needed, f"pyproject has {requirement}; the stubs need protobuf>={needed}"
    assert requirement.specifier.contains(needed), f"{requirement} excludes the stubs' own protobuf {needed}"


def test_grpcio_floor_is_not_below_the_generated_code():
    declared = {Version(v) for path in (ROOT / "proto").rglob("*_pb2_grpc.py")
                for v in re.findall(r"^GRPC_GENERATED_VERSION = '([^']+)'", path.read_text(), re.MULTILINE)}
    assert declared, "no GRPC_GENERATED_VERSION found in proto/"
    needed = max(declared)
    requirement = _requirement("grpcio")
    assert _floor(requirement) >= needed, f"pyproject has {requirement}; the stubs need grpcio>={needed}"
    assert requirement.specifier.contains(needed), f"{requirement} excludes the stubs' own grpcio {needed}"
