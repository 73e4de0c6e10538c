"""Logging for the `brainwave` command: text for people, or JSON lines (`--log-format json`) for log pipelines.

Every record emitted while a server call is handled carries that call's request id (`request_id`), the same id
the client gets back (gRPC trailing metadata and the REST header `x-request-id`).
"""
from __future__ import annotations

import logging
from contextvars import ContextVar

REQUEST_ID: ContextVar[str | None] = ContextVar("brainwave_request_id", default=None)
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    # one object per line: time, level, logger, message, and the request id when there is one
    return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                         rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                         timestamp=False, json_ensure_ascii=False)


def configure(verbose: bool, log_format: str = "text") -> None:
    """INFO from brainwave (DEBUG with -v); libraries at WARNING unless -v (azure-core logs every HTTP call at
    INFO: ~15 lines per registry operation)."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(json_formatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler])
    logging.getLogger("brainwave").setLevel(logging.DEBUG if verbose else logging.INFO)
