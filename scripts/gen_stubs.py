"""Regenerate the Python client package `casinohub` from proto/ (messages, gRPC stubs, .pyi types).

Usage: python scripts/gen_stubs.py [OUT_DIR]   (default: proto/, next to the .proto files)
CI runs it into a temporary folder and diffs against the committed stubs.
"""

import os
import pathlib
import sys

import grpc_tools
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"


def main() -> int:
    # protoc finds the mypy plugins next to this interpreter (the project venv).
    os.environ["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else PROTO
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(str(p.relative_to(PROTO)) for p in PROTO.rglob("*.proto"))
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    code = protoc.main(
        [
            "protoc",
            f"-I{PROTO}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--mypy_out={out}",
            f"--grpc_python_out={out}",
            f"--mypy_grpc_out={out}",
            *files,
        ]
    )
    if code:
        return code
    # Every generated folder is a regular package so `import casinohub.v1` works when installed.
    for folder in {(out / f).parent for f in files}:
        while folder != out:
            (folder / "__init__.py").touch()
            folder = folder.parent
    (out / "casinohub" / "py.typed").touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
