"""Fail (exit 1) if proto/ breaks the contract (buf breaking, FILE rules) against an earlier commit.

The reference defaults to HEAD~1: in CI, a clean clone of main, that is main before the last landed commit
(for a merge, before the whole merged branch). On a branch, pass the branch point: `make breaking
CONTRACT_BASE=main`. The reference tree is taken with `git archive`, so this works in worktrees and in
shallow clones that hold the reference commit (a depth-1 clone is deepened by one commit first).

An intentional break is declared in a commit message between the reference and HEAD with a trailer line
    Contract-Break: <why clients can live with it>
Then the breaking changes are printed but do not fail the check.
"""

import io
import pathlib
import re
import subprocess
import sys
import tarfile
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUF = pathlib.Path(sys.executable).parent / "buf"
MARKER = re.compile(r"^Contract-Break:\s*\S", re.MULTILINE)


def git(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, check=check, capture_output=True, text=True)


def resolve(ref: str) -> str | None:
    found = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    return found.stdout.strip() if found.returncode == 0 else None


def main() -> int:
    ref = sys.argv[1] if len(sys.argv) > 1 else "HEAD~1"
    commit = resolve(ref)
    if commit is None and git("rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        git("fetch", "--quiet", "--deepen=1", check=False)
        commit = resolve(ref)
    if commit is None:
        print(f"contract reference {ref!r} is not in this clone (shallow? try `git fetch --deepen=1`)")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", "--format=tar", commit, "buf.yaml", "proto"],
                                 cwd=ROOT, check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        result = subprocess.run([str(BUF), "breaking", "--against", tmp], cwd=ROOT, capture_output=True,
                                text=True)
    if result.returncode == 0:
        print(f"contract: no breaking change against {ref} ({commit[:12]})")
        return 0
    print(result.stdout + result.stderr, end="")
    messages = git("log", "--format=%B", f"{commit}..HEAD").stdout
    if MARKER.search(messages):
        print(f"contract: breaking changes above are declared (Contract-Break: trailer since {ref})")
        return 0
    print(f"contract: breaking change against {ref} ({commit[:12]}); if intended, add a "
          "`Contract-Break: <reason>` line to the commit message")
    return 1


if __name__ == "__main__":
    sys.exit(main())
