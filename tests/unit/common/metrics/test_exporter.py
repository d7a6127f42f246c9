from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from raftka.common.errors import ConfigFileError
from raftka.common.metrics import MetricsExporter, MetricsSettings


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def test_serves_the_registry_over_http_until_stopped() -> None:
    registry = CollectorRegistry()
    Counter("raftka_test_things_total", "Things.", registry=registry).inc(3)

    async def main() -> None:
        exporter = MetricsExporter(registry, "127.0.0.1:0")
        await exporter.start()
        try:
            status, content_type, body = await asyncio.to_thread(_get, exporter.url)
            assert status == 200 and content_type.startswith("text/plain")
            assert "raftka_test_things_total 3.0" in body
            base = exporter.url.removesuffix("/metrics")
            assert (await asyncio.to_thread(_get, base + "/other"))[0] == 404
        finally:
            await exporter.stop()
        with pytest.raises(urllib.error.URLError):
            await asyncio.to_thread(urllib.request.urlopen, exporter.url, None, 2)

    asyncio.run(main())


def test_a_collector_that_fails_gets_a_500_and_the_endpoint_keeps_serving() -> None:
    registry = CollectorRegistry()
    broken = [True]

    class Flaky:
        def collect(self):  # type: ignore[no-untyped-def]
            if broken[0]:
                raise RuntimeError("state unavailable")
            return iter(())

    registry.register(Flaky())

    async def main() -> None:
        exporter = MetricsExporter(registry, "127.0.0.1:0")
        await exporter.start()
        try:
            status, _type, body = await asyncio.to_thread(_get, exporter.url)
            assert status == 500 and "state unavailable" in body
            broken[0] = False
            assert (await asyncio.to_thread(_get, exporter.url))[0] == 200
        finally:
            await exporter.stop()

    asyncio.run(main())


def test_settings_are_off_by_default_and_check_the_address() -> None:
    assert not MetricsSettings().enabled
    assert MetricsSettings(listen="127.0.0.1:9404").enabled
    with pytest.raises(ConfigFileError, match="host:port"):
        MetricsSettings(listen="9404")
