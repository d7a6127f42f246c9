"""structlog, configured once per process.

Servers log JSON lines (one event per line, machine-readable); interactive commands log to the
console for humans. Events are snake_case facts with fields: ``log.info("became_leader", term=4)``.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

_configured = False

LogFormat = Literal["json", "console"]


def configure_logging(
    level: str = "info", fmt: LogFormat = "json", node: str | None = None
) -> None:
    """Configure structlog for this process. Later calls are ignored, so libraries and tests can
    call it freely; the first caller (the process entry point) decides."""
    global _configured
    if _configured:
        return
    _configured = True
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}: use debug, info, warning or error")
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if node is not None:
        processors.insert(0, _bind_node(node))
    renderer: structlog.typing.Processor
    if fmt == "json":
        processors.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def _bind_node(node: str) -> structlog.typing.Processor:
    def add_node(
        _logger: object, _method: str, event: structlog.typing.EventDict
    ) -> structlog.typing.EventDict:
        event.setdefault("node", node)
        return event

    return add_node
