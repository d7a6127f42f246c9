"""Writes docs/api.md, the browsable reference of the wire contract, from proto/raftka/v1.

    python scripts/gen_api_docs.py           # rewrite docs/api.md
    python scripts/gen_api_docs.py --check   # exit 1 if docs/api.md is stale, or if any service,
                                             # method, message, field, enum or value has no comment

The .proto files are the single source: their comments become the reference, so a client
author in any language reads one page instead of the generated code. protoc (from
grpcio-tools) parses them and hands over every comment with its place (a descriptor set with
source info); this script only lays that out.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE = PROTO_ROOT / "raftka" / "v1"
OUTPUT = ROOT / "docs" / "api.md"

# Field numbers of the descriptor messages, as source-info paths use them.
FILE_MESSAGE, FILE_ENUM, FILE_SERVICE = 4, 5, 6
MESSAGE_FIELD, MESSAGE_NESTED, MESSAGE_ENUM = 2, 3, 4
ENUM_VALUE, SERVICE_METHOD = 2, 2

SCALARS = {
    descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE: "double",
    descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT: "float",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT64: "int64",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT64: "uint64",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32: "int32",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED64: "fixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED32: "fixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: "bool",
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: "string",
    descriptor_pb2.FieldDescriptorProto.TYPE_BYTES: "bytes",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT32: "uint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED32: "sfixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED64: "sfixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT32: "sint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT64: "sint64",
}


def descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    protos = sorted(PACKAGE.glob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        command = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            *(str(p.relative_to(PROTO_ROOT)) for p in protos),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            sys.stderr.write(result.stdout + result.stderr)
            raise SystemExit(f"protoc failed (exit {result.returncode})")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


@dataclass
class Comments:
    by_path: dict[tuple[int, ...], str]

    @classmethod
    def of(cls, file: descriptor_pb2.FileDescriptorProto) -> Comments:
        found: dict[tuple[int, ...], str] = {}
        for location in file.source_code_info.location:
            text = (location.leading_comments or location.trailing_comments).strip()
            if text:
                found[tuple(location.path)] = _tidy(text)
        return cls(found)

    def get(self, path: tuple[int, ...]) -> str:
        return self.by_path.get(path, "")


def _tidy(text: str) -> str:
    return "\n".join(line.strip() for line in text.splitlines())


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _type_name(field: descriptor_pb2.FieldDescriptorProto) -> str:
    if field.type in SCALARS:
        name = SCALARS[field.type]
    else:
        short = field.type_name.rsplit(".", 1)[-1]
        name = f"[{short}](#{short.lower()})"
    if field.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED:
        return f"repeated {name}"
    if field.proto3_optional:
        return f"optional {name}"
    return name


@dataclass
class Page:
    lines: list[str]
    missing: list[str]

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def doc(self, comments: Comments, path: tuple[int, ...], what: str) -> str:
        text = comments.get(path)
        if not text:
            self.missing.append(what)
        return text


def _messages(
    page: Page,
    comments: Comments,
    messages: list[descriptor_pb2.DescriptorProto],
    path: tuple[int, ...],
    prefix: str,
) -> None:
    for i, message in enumerate(messages):
        here = (*path, i)
        name = f"{prefix}{message.name}"
        if message.options.map_entry:
            continue
        page.add(f"### {name}", "")
        text = page.doc(comments, here, f"message {name}")
        if text:
            page.add(text, "")
        if message.field:
            page.add("| field | type | number | meaning |", "|---|---|---|---|")
            for j, field in enumerate(message.field):
                about = page.doc(comments, (*here, MESSAGE_FIELD, j), f"field {name}.{field.name}")
                page.add(
                    f"| `{field.name}` | {_type_name(field)} | {field.number} | "
                    f"{_one_line(about)} |"
                )
            page.add("")
        _enums(page, comments, list(message.enum_type), (*here, MESSAGE_ENUM), f"{name}.")
        _messages(page, comments, list(message.nested_type), (*here, MESSAGE_NESTED), f"{name}.")


def _enums(
    page: Page,
    comments: Comments,
    enums: list[descriptor_pb2.EnumDescriptorProto],
    path: tuple[int, ...],
    prefix: str,
) -> None:
    for i, enum in enumerate(enums):
        here = (*path, i)
        name = f"{prefix}{enum.name}"
        page.add(f"### {name}", "")
        text = page.doc(comments, here, f"enum {name}")
        if text:
            page.add(text, "")
        page.add("| value | number | meaning |", "|---|---|---|")
        for j, value in enumerate(enum.value):
            about = page.doc(comments, (*here, ENUM_VALUE, j), f"value {name}.{value.name}")
            page.add(f"| `{value.name}` | {value.number} | {_one_line(about)} |")
        page.add("")


def _services(page: Page, comments: Comments, file: descriptor_pb2.FileDescriptorProto) -> None:
    for i, service in enumerate(file.service):
        here = (FILE_SERVICE, i)
        page.add(f"### {service.name}", "")
        text = page.doc(comments, here, f"service {service.name}")
        if text:
            page.add(text, "")
        page.add("| method | request | response | meaning |", "|---|---|---|---|")
        for j, method in enumerate(service.method):
            about = page.doc(
                comments, (*here, SERVICE_METHOD, j), f"method {service.name}.{method.name}"
            )
            request = method.input_type.rsplit(".", 1)[-1]
            response = method.output_type.rsplit(".", 1)[-1]
            stream = "stream " if method.server_streaming else ""
            page.add(
                f"| `{method.name}` | [{request}](#{request.lower()}) | "
                f"{stream}[{response}](#{response.lower()}) | {_one_line(about)} |"
            )
        page.add("")


def render() -> Page:
    page = Page(
        [
            "# Raftka API reference (raftka.v1)",
            "",
            "Generated by `scripts/gen_api_docs.py` from the comments in `proto/raftka/v1/*.proto`;",
            "do not edit by hand (CI fails when this page is stale). The conventions every RPC",
            "follows (errors, limits, what 0 and unset mean) are at the top of `common.proto`.",
            "",
        ],
        [],
    )
    files = sorted(descriptor_set().file, key=lambda f: f.name)
    page.add("Files: " + ", ".join(f"[{Path(f.name).name}](#{_anchor(f.name)})" for f in files))
    page.add("")
    for file in files:
        comments = Comments.of(file)
        page.add(f"## {Path(file.name).name}", "")
        overview = comments.get((12,)) or comments.get((2,))  # syntax / package comments
        if overview:
            page.add(overview, "")
        _services(page, comments, file)
        _messages(page, comments, list(file.message_type), (FILE_MESSAGE,), "")
        _enums(page, comments, list(file.enum_type), (FILE_ENUM,), "")
    return page


def _anchor(name: str) -> str:
    return Path(name).name.replace(".", "").lower()


def iter_missing(page: Page) -> Iterator[str]:
    yield from page.missing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="fail if docs/api.md is stale or a comment is missing"
    )
    args = parser.parse_args()
    page = render()
    text = "\n".join(page.lines).rstrip() + "\n"
    if not args.check:
        OUTPUT.write_text(text)
        print(f"wrote {OUTPUT.relative_to(ROOT)} ({len(page.missing)} elements without a comment)")
        return 0
    failed = False
    if not OUTPUT.exists() or OUTPUT.read_text() != text:
        print(
            "docs/api.md is stale: run `python scripts/gen_api_docs.py` and commit it",
            file=sys.stderr,
        )
        failed = True
    if page.missing:
        print(
            f"{len(page.missing)} elements of proto/raftka/v1 have no comment "
            "(say what each means, its unit, and what 0 or unset means):",
            file=sys.stderr,
        )
        for what in page.missing:
            print(f"  {what}", file=sys.stderr)
        failed = True
    if not failed:
        print("docs/api.md is fresh and every element of the contract is documented")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
