"""The ``[metrics]`` table of a node's config."""

from __future__ import annotations

from dataclasses import dataclass

from raftka.common.errors import ConfigFileError


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    listen: str = ""
    """``host:port`` of the Prometheus HTTP endpoint (``/metrics``); empty: not served (the
    default). Port 0 picks a free port (the node logs the one it got)."""

    def __post_init__(self) -> None:
        if self.listen:
            host, sep, port = self.listen.rpartition(":")
            if not sep or not host or not port.isdigit() or int(port) > 65535:
                raise ConfigFileError(
                    f"metrics.listen: expected host:port (e.g. 127.0.0.1:9404), got {self.listen!r}"
                )

    @property
    def enabled(self) -> bool:
        return bool(self.listen)
