"""What security costs: TLS on produce and consume throughput, and authorization and
authentication per request.

    .venv/bin/python scripts/bench_security.py --rounds 3 --records 20000

cluster (skipped with --micro-only): each round starts one fresh local cluster per mode, the
modes interleaved so that machine noise spreads over all of them: 3 controllers + 3 brokers on
127.0.0.1, a topic of 3 partitions with replication factor 3 and min.insync.replicas 2,
`raftka perf produce` of --records 1 KiB records with acks=all and default producer settings
(idempotent), then `raftka perf consume` reading them all back. Besides perf's records/s, MB/s
and latencies, the CPU time the six nodes and the perf client spent per record (from /proc and
getrusage): on a shared machine other processes change throughput a lot and CPU time little.
Modes:

  plaintext  no TLS, no authorizer (what a local cluster runs by default)
  tls        TLS with mTLS on every listener and node-to-node channel; the authorizer off
  tls+acls   TLS with mTLS and the StandardAuthorizer on; the client is User:bench (its own
             certificate, not a super user), allowed by literal ACLs on its topic among
             --filler-acls ACLs for other principals (literal and prefixed)

micro (skipped with --cluster-only): in process, no gRPC. AccessGuard.allowed (the check every
handler makes: the caller's context variable, then StandardAuthorizer.authorize) with 10,
1,000 and 10,000 ACLs, the caller's ALLOW being literal, prefixed or ``*``; and the
authentication interceptor's per-call work (reading the call's metadata and TLS facts,
deciding the principal, binding it) for a cached bearer token, a client certificate, and
an anonymous call; the token's first use (PBKDF2) once. Each micro figure is this process's CPU
time per call (not wall time), the least of 5 timings, less the empty loop's.

Numbers are printed, not asserted: the medians over the rounds and each mode's best round,
with ratios against the plaintext mode of the same run. Every cluster is stopped at the end of its pass.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from itertools import count
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from raftka.client.admin import AsyncAdmin
from raftka.common.metadata.security_image import SecurityImage
from raftka.common.security.acl_authorizer import StandardAuthorizer
from raftka.common.security.authentication import AuthenticationInterceptor, Authenticator
from raftka.common.security.authorizer import AllowEverything, Authorizer
from raftka.common.security.caller import Caller, bind_caller, reset_caller
from raftka.common.security.guard import AccessGuard
from raftka.common.security.model import (
    ALLOW,
    CLUSTER_RESOURCE_NAME,
    LITERAL,
    OP_IDEMPOTENT_WRITE,
    OP_READ,
    OP_WRITE,
    PREFIXED,
    RESOURCE_CLUSTER,
    RESOURCE_TOPIC,
    WILDCARD_RESOURCE,
    Acl,
)
from raftka.common.security.scram import VerificationCache, make_credential
from raftka.common.security.settings import SecuritySettings
from raftka.common.security.tls import bearer_token
from raftka.ops.local_cluster import LocalCluster, stop_clusters_on_sigterm
from raftka.ops.tls_certs import CertificateAuthority
from raftka.v1.common_pb2 import SCRAM_SHA_512
from raftka.v1.metadata_pb2 import (
    AccessControlEntryRecord,
    MetadataRecord,
    UserScramCredentialRecord,
)
from scripts.bench_support import proc_cpu_s

MODES = ("plaintext", "tls", "tls+acls")
BENCH_USER = "bench"
TOPIC = "bench"
MAPPING_RULES = "RULE:^CN=([^,]+).*$/$1/,DEFAULT"
FIGURES = {
    "records/s": re.compile(r"records/s:\s+([\d,]+)"),
    "MB/s": re.compile(r"MB/s:\s+([\d.]+)"),
    "p50 ms": re.compile(r"p50 ([\d.]+) ms"),
    "p99 ms": re.compile(r"p99 ([\d.]+) ms"),
}
COLUMNS = ("records/s", "MB/s", "p50 ms", "p99 ms", "nodes cpu us/rec", "client cpu us/rec")
Figures = dict[str, float]

# ------------------------------------------------------------------------------ cluster


def make_cluster(base: Path, mode: str) -> LocalCluster:
    if mode == "plaintext":
        return LocalCluster(base, controllers=3, brokers=3, log_level="warning")
    # A tls cluster turns the authorizer on; the "tls" mode measures TLS alone.
    settings = {"authorizer_enable": False} if mode == "tls" else {}
    return LocalCluster(
        base, controllers=3, brokers=3, log_level="warning", tls=True, security_settings=settings
    )


def client_properties(cluster: LocalCluster, mode: str) -> list[str]:
    """The `--producer-property` / `--consumer-property` values of the mode's client."""
    if mode == "plaintext":
        return []
    name = BENCH_USER if mode == "tls+acls" else "admin"
    tls = cluster.tls_dir
    return [
        "security.protocol=SSL",
        f"ssl.ca.location={tls / 'ca.crt'}",
        f"ssl.certificate.location={tls / f'{name}.crt'}",
        f"ssl.key.location={tls / f'{name}.key'}",
    ]


def filler_acls(n: int) -> Iterator[Acl]:
    """``n`` ACLs of other principals: 4 in 5 literal on topics of their own, 1 in 5 prefixed
    with prefixes of 2 to 17 characters (so a check looks up several prefix lengths)."""
    for i in range(n):
        principal = f"User:app-{i % 50}"
        op = OP_WRITE if i % 2 else OP_READ
        if i % 5 == 4:
            prefix = f"t{i:06d}-team"[: 2 + i % 16]
            yield Acl(RESOURCE_TOPIC, prefix, PREFIXED, principal, "*", op, ALLOW)
        else:
            yield Acl(RESOURCE_TOPIC, f"topic-{i}", LITERAL, principal, "*", op, ALLOW)


async def prepare_topic(cluster: LocalCluster, mode: str, filler: int) -> None:
    security = cluster.client_security() if cluster.tls else None
    async with AsyncAdmin(cluster.bootstrap, timeout_s=60, security=security) as admin:
        deadline = time.monotonic() + 60
        while True:  # every broker registered and unfenced
            brokers = (await admin.describe_cluster()).brokers
            if len([b for b in brokers if not b.fenced]) == len(cluster.brokers):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the brokers did not register within 60 s")
            await asyncio.sleep(0.1)
        await admin.create_topic(TOPIC, 3, 3, configs={"min.insync.replicas": "2"})
        if mode != "tls+acls":
            return
        principal = f"User:{BENCH_USER}"
        mine = [
            Acl(RESOURCE_TOPIC, TOPIC, LITERAL, principal, "*", OP_WRITE, ALLOW),
            Acl(RESOURCE_TOPIC, TOPIC, LITERAL, principal, "*", OP_READ, ALLOW),
            Acl(RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME, LITERAL, principal, "*",
                OP_IDEMPOTENT_WRITE, ALLOW),
        ]  # fmt: skip
        others = list(filler_acls(filler))
        for start in range(0, len(others), 500):
            await admin.create_acls(others[start : start + 500])
        await admin.create_acls(mine)


def perf(cluster: LocalCluster, mode: str, *args: str, records: int) -> Figures:
    """Run `raftka perf` once; its figures, plus the CPU time the nodes and the client spent
    per record (us), which other processes on a shared machine hardly change."""
    flag = "--producer-property" if args[0] == "produce" else "--consumer-property"
    props = [x for p in client_properties(cluster, mode) for x in (flag, p)]
    nodes = [n.process.pid for n in [*cluster.nodes.values(), *cluster.brokers.values()]
             if n.process is not None]  # fmt: skip
    # A fresh cluster: the topic's partitions may still be electing; retry a refused start.
    for attempt in range(3):
        nodes_cpu, client_cpu = sum(proc_cpu_s(pid) for pid in nodes), children_cpu_s()
        result = subprocess.run(
            [sys.executable, "-m", "raftka.client.cli", "perf", *args, "--topic", TOPIC,
             *props, "--bootstrap-server", ",".join(cluster.bootstrap_servers)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode == 0:
            break
        if attempt == 2:
            raise RuntimeError(f"perf {args[0]} ({mode}) failed: {result.stderr.strip()[-800:]}")
    figures = {}
    for name, pattern in FIGURES.items():
        m = pattern.search(result.stdout)
        if m:
            figures[name] = float(m.group(1).replace(",", ""))
    nodes_cpu = sum(proc_cpu_s(pid) for pid in nodes) - nodes_cpu
    figures["nodes cpu us/rec"] = nodes_cpu / records * 1e6
    figures["client cpu us/rec"] = (children_cpu_s() - client_cpu) / records * 1e6
    return figures


def children_cpu_s() -> float:
    """User + system CPU of this process's finished children (the perf runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_pass(mode: str, records: int, filler: int) -> tuple[Figures, Figures]:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = make_cluster(Path(tmp), mode)
        cluster.prepare()
        if mode == "tls+acls":
            CertificateAuthority.load(cluster.tls_dir).issue(cluster.tls_dir, BENCH_USER)
        cluster.start()
        try:
            asyncio.run(prepare_topic(cluster, mode, filler))
            produced = perf(cluster, mode, "produce", "--num-records", str(records),
                            "--record-size", "1024", "--acks", "all", records=records)  # fmt: skip
            consumed = perf(cluster, mode, "consume", "--messages", str(records), records=records)
            return produced, consumed
        finally:
            cluster.stop_all()


def run_cluster(rounds: int, records: int, filler: int) -> dict[str, dict[str, list[Figures]]]:
    results: dict[str, dict[str, list[Figures]]] = {
        m: {"produce": [], "consume": []} for m in MODES
    }
    for r in range(rounds):
        for mode in MODES:
            produced, consumed = one_pass(mode, records, filler)
            results[mode]["produce"].append(produced)
            results[mode]["consume"].append(consumed)
            print(f"round {r + 1} {mode:>9} produce: {_line(produced)}", flush=True)
            print(f"round {r + 1} {mode:>9} consume: {_line(consumed)}", flush=True)
    return results


def cluster_table(results: dict[str, dict[str, list[Figures]]]) -> None:
    """Two tables: the medians of the rounds, and the best round of each mode (its highest
    records/s, with that round's latencies). On a shared machine other processes only ever
    slow a round down, so the best rounds compare the modes' own costs; the medians show
    what a run meets."""
    for title, pick in (("medians", _medians), ("best round", _best)):
        print(f"\n{title} (ratio to plaintext in brackets):")
        print(f"  {'':18s} {'records/s':>18s} {'MB/s':>15s} {'p50 ms':>15s} {'p99 ms':>15s} "
              f"{'nodes cpu us/rec':>18s} {'client cpu us/rec':>18s}")  # fmt: skip
        for step in ("produce", "consume"):
            base = pick(results["plaintext"][step])
            for mode in MODES:
                figures = pick(results[mode][step])
                cells = []
                for key in COLUMNS:
                    if key not in figures:
                        cells.append(f"{'-':>15s}")
                        continue
                    ratio = figures[key] / base[key] if base.get(key) else float("nan")
                    value = figures[key]
                    fmt = f"{value:,.0f}" if key == "records/s" else f"{value:,.1f}"
                    cells.append(f"{fmt:>8s} ({ratio:4.2f})".rjust(18 if "cpu" in key else 15))
                print(f"  {step + ' ' + mode:18s} {cells[0]:>18s} {' '.join(cells[1:])}")


def _medians(runs: list[Figures]) -> Figures:
    keys = {k for r in runs for k in r}
    return {k: statistics.median(r[k] for r in runs if k in r) for k in keys}


def _best(runs: list[Figures]) -> Figures:
    return max(runs, key=lambda r: r.get("records/s", 0.0))


def _line(figures: Figures) -> str:
    return "  ".join(
        f"{value:,.0f} records/s" if name == "records/s" else f"{name} {value:,.1f}"
        for name, value in figures.items()
    )


# ------------------------------------------------------------------------------ micro

CALLER = Caller(principal=f"User:{BENCH_USER}", host="10.0.0.7", authenticated=True)


def per_call_ns(fn: Callable[[], object], iterations: int, repeats: int = 5) -> float:
    """CPU time of this process per call (not wall time: other processes on a shared machine
    do not count), the least of ``repeats`` timings of ``iterations`` calls."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time_ns()
        for _ in range(iterations):
            fn()
        best = min(best, (time.process_time_ns() - started) / iterations)
    return best


def image_of(acls: Sequence[Acl]) -> SecurityImage:
    image = SecurityImage()
    ids = count()
    for acl in acls:
        record = AccessControlEntryRecord(id=f"acl-{next(ids)}", binding=acl.to_proto())
        image.apply(MetadataRecord(access_control_entry=record))
    return image


def guard_over(authorizer: Authorizer) -> Callable[[], object]:
    guard = AccessGuard(authorizer)
    return lambda: guard.allowed(OP_WRITE, RESOURCE_TOPIC, "orders-eu")


def authorization_cases(iterations: int) -> list[tuple[str, float]]:
    """(case, ns per check) for AccessGuard.allowed: User:bench writes topic "orders-eu"."""
    principal = CALLER.principal
    theirs = {
        "literal": Acl(RESOURCE_TOPIC, "orders-eu", LITERAL, principal, "*", OP_WRITE, ALLOW),
        "prefixed": Acl(RESOURCE_TOPIC, "orders-", PREFIXED, principal, "*", OP_WRITE, ALLOW),
        "wildcard": Acl(
            RESOURCE_TOPIC, WILDCARD_RESOURCE, LITERAL, principal, "*", OP_WRITE, ALLOW
        ),
    }
    out: list[tuple[str, float]] = []
    token = bind_caller(CALLER)
    try:
        baseline = per_call_ns(lambda: None, iterations)
        off = per_call_ns(guard_over(AllowEverything()), iterations) - baseline
        out.append(("authorizer off", off))
        empty = SecurityImage()
        su = StandardAuthorizer(lambda: empty, frozenset({principal}))
        out.append(("super user", per_call_ns(guard_over(su), iterations) - baseline))
        for n in (10, 1_000, 10_000):
            filler = list(filler_acls(n - 1))
            for kind, acl in theirs.items():
                image = image_of([*filler, acl])
                authorizer = StandardAuthorizer(lambda image=image: image)  # type: ignore[misc]
                check = guard_over(authorizer)
                assert check() is True, f"{kind} ACL among {n} does not allow"
                out.append((f"{n:,} ACLs, {kind} allow", per_call_ns(check, iterations) - baseline))
    finally:
        reset_caller(token)
    return out


class FakeContext:
    """What the interceptor reads from a call's servicer context."""

    def __init__(self, metadata: tuple[tuple[str, str], ...], auth: dict[str, list[bytes]]):
        self._metadata = metadata
        self._auth = auth

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth

    def peer(self) -> str:
        return "ipv4:10.0.0.7:51234"

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def run_now(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (the interceptor's bind, when it does not refuse)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the coroutine suspended")


def authentication_cases(iterations: int) -> list[tuple[str, float]]:
    password = "bench-password"
    credential = make_credential(BENCH_USER, password, SCRAM_SHA_512, 4096)
    image = SecurityImage()
    image.apply(
        MetadataRecord(
            user_scram_credential=UserScramCredentialRecord(
                name=credential.name,
                mechanism=credential.mechanism,  # type: ignore[arg-type]
                salt=credential.salt,
                stored_key=credential.stored_key,
                server_key=credential.server_key,
                iterations=credential.iterations,
            )
        )
    )
    settings = SecuritySettings(principal_mapping_rules=MAPPING_RULES)
    interceptor = AuthenticationInterceptor(Authenticator(settings, lambda: image))
    tls = {"transport_security_type": [b"ssl"]}
    subject = {**tls, "x509_subject": [f"CN={BENCH_USER},OU=raftka".encode()]}
    token = bearer_token(BENCH_USER, password)
    contexts = {
        "anonymous (nothing presented)": FakeContext((), tls),
        "client certificate": FakeContext((), subject),
        "bearer token, cached": FakeContext((("authorization", f"Bearer {token}"),), tls),
    }
    out: list[tuple[str, float]] = []
    baseline = per_call_ns(lambda: None, iterations)
    for name, context in contexts.items():

        def call(context: FakeContext = context) -> None:
            bound = run_now(interceptor._bind(context, "/raftka.v1.BrokerService/Produce"))
            interceptor._unbind(bound)

        call()  # the token's first use fills the verification cache
        out.append((f"interceptor, {name}", per_call_ns(call, iterations) - baseline))
    fresh = 20

    def first_use() -> None:
        Authenticator(settings, lambda: image, VerificationCache()).authenticate(
            token=token, cert_subject=None, tls=True, host="10.0.0.7"
        )

    out.append(
        ("bearer token, first use (PBKDF2, 4096 it.)", per_call_ns(first_use, fresh, repeats=3))
    )
    return out


def micro_table(iterations: int) -> None:
    print(f"\nauthorization per check (AccessGuard.allowed, {iterations:,} iterations):")
    for name, ns in authorization_cases(iterations):
        print(f"  {name:44s} {ns / 1000:8.2f} us")
    print("authentication per call (the interceptor's bind + unbind):")
    for name, ns in authentication_cases(iterations // 4):
        print(f"  {name:44s} {ns / 1000:8.2f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--records", type=int, default=20_000, help="1 KiB records per pass")
    parser.add_argument("--filler-acls", type=int, default=1_000, help="in the tls+acls mode")
    parser.add_argument("--iterations", type=int, default=100_000, help="per micro case")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--cluster-only", action="store_true")
    only.add_argument("--micro-only", action="store_true")
    args = parser.parse_args()
    print(f"command: {' '.join(sys.argv)}")
    if not args.cluster_only:
        micro_table(args.iterations)
    if not args.micro_only:
        stop_clusters_on_sigterm()
        print(f"\n{args.rounds} rounds of {args.records:,} records of 1 KiB, acks=all, "
              "3 brokers, RF 3, min.insync.replicas 2, modes interleaved:")  # fmt: skip
        cluster_table(run_cluster(args.rounds, args.records, args.filler_acls))


if __name__ == "__main__":
    main()
