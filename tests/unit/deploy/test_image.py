"""deploy/Dockerfile and the image's entrypoint. Docker is not available to CI, so the
Dockerfile is checked structurally (non-root, data on a volume, no secrets copied in, a health
check), and the entrypoint is run with a stand-in ``raftka`` that records its calls."""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from pathlib import Path

from tests.unit.deploy.manifests import DEPLOY, ENTRYPOINT, ROOT, render

DOCKERFILE = DEPLOY / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def test_image_runs_as_a_non_root_user_with_data_on_a_volume() -> None:
    final = _final_stage()
    assert re.fullmatch(r"python:3\.1[12]-slim", final[0][1]), final[0]
    users = [args for word, args in final if word == "USER"]
    assert users, "the final stage sets a USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"runs as {user}"
    volumes = " ".join(args for word, args in final if word == "VOLUME")
    assert "/var/lib/raftka" in volumes
    exposed = {p for word, args in final if word == "EXPOSE" for p in args.split()}
    assert {"9092", "9093", "9404"} <= exposed
    assert any(word == "HEALTHCHECK" and "raftka-ready" in args for word, args in final)
    assert any(word == "ENTRYPOINT" and "raftka-entrypoint" in args for word, args in final)


def test_image_copies_no_secrets_and_only_files_the_context_holds() -> None:
    instructions = _instructions()
    assert not [a for w, a in instructions if w == "ADD"], "use COPY (ADD fetches and unpacks)"
    ignore = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for word, args in instructions:
        if word != "COPY" or "--from=" in args:
            continue
        *sources, _dest = [a for a in args.split() if not a.startswith("--")]
        for source in sources:
            assert not re.search(r"\.(pem|key|crt|p12)$|secret|credential", source), source
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            assert _kept_by_dockerignore(source, ignore), f"COPY {source}: .dockerignore drops it"


def _kept_by_dockerignore(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; ``!`` re-includes."""
    kept = True
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, body) or path.startswith(body + "/"):
            kept = negate
    return kept


def test_entrypoint_and_probe_are_executable() -> None:
    for script in (ENTRYPOINT, DEPLOY / "docker" / "ready.py"):
        assert script.stat().st_mode & stat.S_IXUSR, f"{script} is not executable"


def _fake_raftka(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A ``raftka`` on PATH that appends its arguments to calls.txt (and formats like the
    real one would, by writing meta.properties)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    fake = bin_dir / "raftka"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        f'if [ "$1" = format ]; then mkdir -p "$RAFTKA_DATA_DIR" && '
        'touch "$RAFTKA_DATA_DIR/meta.properties"; fi\n'
    )
    fake.chmod(0o755)
    data = tmp_path / "data"
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "RAFTKA_DATA_DIR": str(data)}
    return env, calls


TEMPLATE = 'node_id = @NODE_ID@\nadvertised = "@POD_NAME@.raftka-broker"\n'


def test_entrypoint_formats_an_empty_disk_once_then_runs_the_server(tmp_path: Path) -> None:
    env, calls = _fake_raftka(tmp_path)
    env |= {"RAFTKA_NODE_ID_BASE": "100", "RAFTKA_CLUSTER_ID": "k8s-test-cluster"}
    config = tmp_path / "run" / "node.toml"
    first = render(TEMPLATE, "raftka-broker-2", env, tmp_path, ["--set", "log.level=debug"])
    assert first.returncode == 0, first.stderr
    second = render(TEMPLATE, "raftka-broker-2", env, tmp_path, [])
    assert second.returncode == 0, second.stderr
    assert calls.read_text().splitlines() == [
        f"format --config {config} --cluster-id k8s-test-cluster",
        f"server --config {config} --set log.level=debug",
        f"server --config {config}",
    ]
    assert config.read_text() == 'node_id = 102\nadvertised = "raftka-broker-2.raftka-broker"\n'


def test_entrypoint_refuses_to_format_without_a_cluster_id(tmp_path: Path) -> None:
    env, calls = _fake_raftka(tmp_path)
    for cluster_id in ("", "REPLACE-with-a-random-id"):
        env["RAFTKA_CLUSTER_ID"] = cluster_id
        result = render(TEMPLATE, "raftka-controller-0", env, tmp_path, [])
        assert result.returncode == 2
        assert "RAFTKA_CLUSTER_ID is not set" in result.stderr
    assert not calls.exists()


def test_entrypoint_needs_a_pod_ordinal_or_a_node_id(tmp_path: Path) -> None:
    env, _calls = _fake_raftka(tmp_path)
    result = render(TEMPLATE, "my-laptop", env, tmp_path)
    assert result.returncode == 2
    assert "RAFTKA_NODE_ID" in result.stderr
    by_hand = render(TEMPLATE, "my-laptop", env | {"RAFTKA_NODE_ID": "7"}, tmp_path)
    assert by_hand.returncode == 0, by_hand.stderr
    assert by_hand.stdout.startswith("node_id = 7\n")


def test_entrypoint_runs_other_raftka_commands_as_given(tmp_path: Path) -> None:
    env, calls = _fake_raftka(tmp_path)
    result = render(TEMPLATE, "anything", env, tmp_path, ["raftka", "topics", "list"])
    assert result.returncode == 0, result.stderr
    assert calls.read_text() == "topics list\n"
