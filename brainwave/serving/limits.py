"""What one request, and the server as a whole, may cost.

Per request (checked before anything is allocated or decoded): items, elements, decoded pixels.
Server-wide: the decoded pixels of all requests in flight. gRPC itself caps concurrent RPCs
(`maximum_concurrent_rpcs`, RESOURCE_EXHAUSTED beyond it) and messages (`max_receive_message_length`).
"""
from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Iterator

from brainwave.errors import ResourceLimitError

DEFAULT_MAX_ELEMENTS = 1 << 24  # per request, for inputs whose per-item size the graph leaves open


@dataclass(frozen=True)
class RequestLimits:
    max_items: int = 64  # batch-1 items per Predict request
    max_request_pixels: int = 80_000_000  # decoded pixels per request (two 40-megapixel photos)
    max_elements: int = DEFAULT_MAX_ELEMENTS  # input elements, when the model's input shape does not bound them

    def elements_for(self, pipeline) -> int:
        """The most input elements a request to `pipeline` can legitimately carry: max_items whole items."""
        if pipeline.takes_images:
            return self.max_items
        shape = pipeline.input_shape
        if shape.rank is None or not shape[1:].is_fully_defined():
            return self.max_elements
        return self.max_items * max(shape[1:].num_elements(), 1)


class PixelBudget:
    """Decoded pixels in flight across the server. A request reserves its pixels before decoding; when the budget
    is spent it waits (up to `wait_s`, or less when its deadline is nearer), then gets RESOURCE_EXHAUSTED."""

    def __init__(self, max_pixels: int, wait_s: float = 2.0) -> None:
        self.max_pixels = max_pixels
        self.wait_s = wait_s
        self.in_flight = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, pixels: int, deadline_s: float | None = None) -> Iterator[None]:
        if pixels > self.max_pixels:
            raise ResourceLimitError(f"the request decodes {pixels} pixels, more than the server's whole budget of "
                                     f"{self.max_pixels} (--max-inflight-pixels)")
        wait = self.wait_s if deadline_s is None else max(0.0, min(self.wait_s, deadline_s))
        end = time.monotonic() + wait
        with self._cond:
            while self.in_flight + pixels > self.max_pixels:
                left = end - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    if self.in_flight + pixels <= self.max_pixels:
                        break
                    raise ResourceLimitError(
                        f"server busy: {self.in_flight} decoded pixels in flight, this request needs {pixels} more "
                        f"(budget {self.max_pixels}, --max-inflight-pixels); retry later")
            self.in_flight += pixels
        try:
            yield
        finally:
            with self._cond:
                self.in_flight -= pixels
                self._cond.notify_all()
