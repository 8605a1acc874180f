"""Fail (exit 1) if the committed casinohub stubs drift from what proto/ generates."""

import filecmp
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
GENERATED = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def generated_files(root: pathlib.Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.name.endswith(GENERATED)}


def main() -> int:
    committed_root = ROOT / "proto"
    with tempfile.TemporaryDirectory() as tmp:
        fresh_root = pathlib.Path(tmp)
        subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_stubs.py"), tmp], check=True,
                       stdout=subprocess.DEVNULL)
        committed, fresh = generated_files(committed_root), generated_files(fresh_root)
        drift = sorted(committed ^ fresh)
        drift += [f for f in sorted(committed & fresh)
                  if not filecmp.cmp(committed_root / f, fresh_root / f, shallow=False)]
    if drift:
        print("stubs drift from proto/ (run `make stubs` and commit):", *drift, sep="\n  ")
        return 1
    print(f"stubs match proto/ ({len(fresh)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
