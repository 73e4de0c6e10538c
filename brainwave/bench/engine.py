"""The load loops. One asyncio event loop drives every request (gRPC aio or httpx), so a level of 8 clients or
50 requests/s costs no thread per request.

Closed loop, N clients: each sends its next request when its last one answered; latency is answer - send.
Open loop, R requests/s: sends follow a schedule (evenly spaced, or Poisson) whatever the answers do; latency
is answer - *intended* send time. If the client itself cannot send on time (the outstanding-request cap, a busy
loop), that wait is in the latency too: nothing a slow server causes is left out (no coordinated omission).
"""
from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Sequence

import numpy as np

from brainwave.bench.inputs import random_inputs
from brainwave.bench.scrape import breakdown, scrape
from brainwave.bench.targets import OK, BenchError, Connection, open_target

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
CDF_PERCENTILES = (*np.arange(0, 99, 1.0), 99.0, 99.5, 99.9, 99.95, 99.99, 100.0)
_MAX_US = 3_600_000_000  # an hour, in microseconds: the histogram's range


@dataclass(frozen=True)
class Level:
    mode: str  # "concurrency" or "rate"
    value: float

    @property
    def label(self) -> str:
        if self.mode == "rate":
            return f"{self.value:g}/s"
        return f"{int(self.value)} client{'s' if self.value != 1 else ''}"


@dataclass(frozen=True)
class BenchConfig(Connection):
    """Where to send (the Connection fields: address, protocol, model, keys, TLS, timeout) and how much."""

    inputs: Sequence[bytes | np.ndarray] = ()  # empty: random inputs matching the model's metadata
    concurrency: Sequence[int] = ()
    rates: Sequence[float] = ()
    arrivals: str = "constant"  # or "poisson" (open loop)
    duration_s: float = 10.0  # measured time per level
    warmup_s: float = 2.0  # per level, before measuring
    max_requests: int | None = None  # measured requests per level: stop sooner when reached
    max_outstanding: int = 1000  # open loop: requests in flight at once, beyond which sending waits
    metrics_url: str | None = None  # the server's /metrics, for the per-stage breakdown
    seed: int = 0

    def levels(self) -> list[Level]:
        levels = [Level("concurrency", c) for c in self.concurrency] + [Level("rate", r) for r in self.rates]
        return levels or [Level("concurrency", 1)]



@dataclass
class LevelResult:
    level: Level
    arrivals: str
    duration_s: float
    codes: dict[str, int]
    latency_ms: dict[str, float]  # p50, p90, p99, p99.9, mean, max (successful requests)
    cdf_ms: list[tuple[float, float]]  # (percentile, ms)
    histogram: str  # the HDR histogram (microseconds), base64 as HdrHistogram encodes it
    send_lag_ms: dict[str, float] = field(default_factory=dict)  # open loop: how late the client sent
    server: dict | None = None  # per-stage means from the server's metrics

    @property
    def ok(self) -> int:
        return self.codes.get(OK, 0)

    @property
    def errors(self) -> dict[str, int]:
        return {code: n for code, n in self.codes.items() if code != OK}

    @property
    def throughput(self) -> float:
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    def to_json(self) -> dict:
        return {"mode": self.level.mode, "value": self.level.value, "label": self.level.label,
                "arrivals": self.arrivals if self.level.mode == "rate" else None,
                "duration_s": self.duration_s, "requests": sum(self.codes.values()), "ok": self.ok,
                "errors": self.errors, "throughput_rps": self.throughput, "latency_ms": self.latency_ms,
                "cdf_ms": self.cdf_ms, "send_lag_ms": self.send_lag_ms or None, "server": self.server,
                "hdr_histogram_us": self.histogram}


@dataclass
class BenchReport:
    config: BenchConfig
    levels: list[LevelResult]

    def to_json(self) -> dict:
        c = self.config
        return {"address": c.address, "protocol": c.protocol, "model": c.model or None, "version": c.version,
                "inputs": len(c.inputs) or "random", "duration_s": c.duration_s, "warmup_s": c.warmup_s,
                "levels": [level.to_json() for level in self.levels]}


class Recorder:
    """Latencies of successful requests (HDR histogram, microseconds) and every request's status."""

    def __init__(self) -> None:
        from hdrh.histogram import HdrHistogram

        self.histogram = HdrHistogram(1, _MAX_US, 3)
        self.codes: Counter[str] = Counter()
        self.lags_ms: list[float] = []
        self.last: float | None = None

    def record(self, code: str, seconds: float, done: float) -> None:
        self.codes[code] += 1
        if code == OK:
            self.histogram.record_value(min(max(1, round(seconds * 1e6)), _MAX_US))
        self.last = done

    def result(self, level: Level, arrivals: str, start: float) -> LevelResult:
        h = self.histogram
        ok = h.get_total_count() > 0
        latency = {f"p{p:g}": h.get_value_at_percentile(p) / 1000 if ok else float("nan") for p in PERCENTILES}
        latency |= {"mean": h.get_mean_value() / 1000 if ok else float("nan"),
                    "max": h.get_max_value() / 1000 if ok else float("nan")}
        cdf = [(float(p), h.get_value_at_percentile(p) / 1000) for p in CDF_PERCENTILES] if ok else []
        lag = {}
        if self.lags_ms:
            lags = np.asarray(self.lags_ms)
            lag = {"p50": float(np.percentile(lags, 50)), "p99": float(np.percentile(lags, 99)), "max": float(lags.max())}
        duration = (self.last - start) if self.last is not None else 0.0
        return LevelResult(level, arrivals, duration, dict(self.codes), latency, cdf, h.encode().decode(), lag)


Call = Callable[[object], Awaitable[str]]


async def closed_loop(call: Call, payloads: Sequence, clients: int, warmup_end: float, end: float,
                      recorder: Recorder, max_requests: int | None = None) -> None:
    """`clients` loops, each sending its next request as soon as the last answered, until `end`; requests
    sent before `warmup_end` are not recorded."""
    loop = asyncio.get_running_loop()
    sent = 0

    async def client(index: int) -> None:
        nonlocal sent
        k = index
        while loop.time() < end and (max_requests is None or sent < max_requests):
            begin = loop.time()
            measured = begin >= warmup_end
            sent += measured
            code = await call(payloads[k % len(payloads)])
            k += clients
            done = loop.time()
            if measured:
                recorder.record(code, done - begin, done)

    await asyncio.gather(*(client(i) for i in range(clients)))


def arrival_times(rate: float, arrivals: str, start: float, end: float, seed: int) -> np.ndarray:
    """Intended send times in [start, end): every 1/rate seconds, or a Poisson process of that rate."""
    count = int((end - start) * rate) + 1
    if arrivals == "poisson":
        gaps = np.random.default_rng(seed).exponential(1.0 / rate, int(count * 1.5) + 16)
        times = start + np.cumsum(gaps) - gaps[0]
    elif arrivals == "constant":
        times = start + np.arange(count) / rate
    else:
        raise BenchError(f"unknown arrival process {arrivals!r}: constant or poisson")
    return times[times < end]


async def open_loop(call: Call, payloads: Sequence, times: np.ndarray, warmup_end: float, recorder: Recorder,
                    max_outstanding: int, max_requests: int | None = None) -> None:
    """Send one request at each intended time in `times` (loop clock), at most `max_outstanding` in flight;
    latency runs from the intended time."""
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(max_outstanding)
    pending: set[asyncio.Task] = set()
    measured = 0

    async def one(payload, intended: float, record: bool) -> None:
        try:
            if record:
                recorder.lags_ms.append((loop.time() - intended) * 1000)
            code = await call(payload)
        finally:
            slots.release()
        done = loop.time()
        if record:
            recorder.record(code, done - intended, done)

    for index, intended in enumerate(times):
        record = intended >= warmup_end
        if record and max_requests is not None and measured >= max_requests:
            break
        measured += record
        delay = intended - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await slots.acquire()  # waiting here is part of the request's latency: it runs from `intended`
        task = asyncio.create_task(one(payloads[index % len(payloads)], float(intended), record))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.gather(*pending)


async def run_level(call: Call, payloads: Sequence, level: Level, config: BenchConfig,
                    progress: Callable[[Level, float, Recorder], None] | None = None) -> LevelResult:
    loop = asyncio.get_running_loop()
    recorder = Recorder()
    start = loop.time()
    warmup_end = start + config.warmup_s
    end = warmup_end + config.duration_s
    if level.mode == "concurrency":
        work = closed_loop(call, payloads, int(level.value), warmup_end, end, recorder, config.max_requests)
    else:
        times = arrival_times(level.value, config.arrivals, start, end, config.seed)
        work = open_loop(call, payloads, times, warmup_end, recorder, config.max_outstanding, config.max_requests)
    task = asyncio.ensure_future(work)
    while not task.done():
        if progress is not None:
            progress(level, loop.time() - start, recorder)
        await asyncio.wait([task], timeout=0.25)
    task.result()
    return recorder.result(level, config.arrivals, warmup_end)


async def _run(config: BenchConfig, progress=None, on_level=None) -> BenchReport:
    levels = config.levels()
    for level in levels:
        if level.value <= 0:
            raise BenchError(f"{level.mode} must be positive, got {level.value:g}")
    connections = max([int(lv.value) for lv in levels if lv.mode == "concurrency"] + [8])
    target = open_target(config, connections)
    metrics = None
    try:
        inputs = list(config.inputs) or random_inputs(await target.signature(), 8, config.seed)
        payloads = [target.encode(item) for item in inputs]
        code = await target.call(payloads[0])  # connect, and fail fast on a server that refuses everything
        if code != OK:
            raise BenchError(f"the first request to {config.address} failed: {code}")
        if config.metrics_url:
            import httpx

            metrics = httpx.AsyncClient(timeout=10)
        results = []
        for level in levels:
            before = await scrape(metrics, config.metrics_url, config.model) if metrics else None
            result = await run_level(target.call, payloads, level, config, progress)
            if metrics:
                result.server = breakdown(before, await scrape(metrics, config.metrics_url, config.model))
            results.append(result)
            if on_level is not None:
                on_level(result)
        return BenchReport(config, results)
    finally:
        if metrics is not None:
            await metrics.aclose()
        await target.close()


def run_bench(config: BenchConfig, progress: Callable[[Level, float, Recorder], None] | None = None,
              on_level: Callable[[LevelResult], None] | None = None) -> BenchReport:
    """Run every level of `config` in turn against the server; `progress(level, elapsed_s, recorder)` is called
    a few times a second, `on_level(result)` after each level."""
    return asyncio.run(_run(config, progress, on_level))
