"""Regenerates the Python stubs (and their type stubs) for proto/raftka/v1/*.proto.

    python scripts/gen_proto.py           # rewrite the generated files beside the .proto files
    python scripts/gen_proto.py --check   # exit 1 if the committed files are stale

The generated files are committed so that ``pip install raftka`` needs no code generator.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE = PROTO_ROOT / "raftka" / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def generate(out_dir: Path) -> list[Path]:
    bin_dir = Path(sys.executable).parent
    protos = sorted(PACKAGE.glob("*.proto"))
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *(str(p.relative_to(PROTO_ROOT)) for p in protos),
    ]
    # The mypy plugins announce every file they write on stderr: show that only on failure.
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"protoc failed (exit {result.returncode})")
    produced = out_dir / "raftka" / "v1"
    return sorted(p for p in produced.iterdir() if p.name.endswith(GENERATED_SUFFIXES))


def committed_files() -> list[Path]:
    return sorted(p for p in PACKAGE.iterdir() if p.name.endswith(GENERATED_SUFFIXES))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the stubs are stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        if args.check:
            fresh_names = {p.name for p in fresh}
            stale = sorted(fresh_names ^ {p.name for p in committed_files()})
            stale += [
                p.name
                for p in fresh
                if (PACKAGE / p.name).exists() and not filecmp.cmp(p, PACKAGE / p.name, False)
            ]
            if stale:
                print(
                    "generated stubs are stale: " + ", ".join(sorted(set(stale))) + "\n"
                    "run `.venv/bin/python scripts/gen_proto.py` and commit the result",
                    file=sys.stderr,
                )
                return 1
            print(f"{len(fresh)} generated files are fresh")
            return 0
        for old in committed_files():
            old.unlink()
        for new in fresh:
            shutil.copyfile(new, PACKAGE / new.name)
        print(f"wrote {len(fresh)} files to {PACKAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
