"""bench's outputs: a table per run, the JSON, and a plot (latency vs throughput, latency CDF per level, the
server's per-stage time per level)."""
from __future__ import annotations

import json
import math
from pathlib import Path

from rich.table import Table

from brainwave.bench.engine import PERCENTILES, BenchReport


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def table(report: BenchReport) -> Table:
    c = report.config
    loop = {"concurrency": "closed loop", "rate": f"open loop, {c.arrivals} arrivals"}
    modes = sorted({level.level.mode for level in report.levels})
    table = Table(title=f"{c.protocol} {c.address} {c.model or ''} ({'; '.join(loop[m] for m in modes)}; "
                        f"{c.duration_s:g} s per level after {c.warmup_s:g} s warm-up; latency in ms"
                        f"{', from intended send times' if 'rate' in modes else ''})")
    for column in ("level", "ok", "errors", "req/s", *(f"p{p:g}" for p in PERCENTILES), "max"):
        table.add_column(column, justify="right")
    has_server = any(level.server for level in report.levels)
    if has_server:
        table.add_column("server ms/req", justify="right")
        table.add_column("slowest stage (ms/item)", justify="left")
    for r in report.levels:
        errors = ", ".join(f"{code}: {n}" for code, n in sorted(r.errors.items())) or "0"
        row = [r.level.label, str(r.ok), errors, f"{r.throughput:.1f}",
               *(_ms(r.latency_ms[f"p{p:g}"]) for p in PERCENTILES), _ms(r.latency_ms["max"])]
        if has_server:
            server = r.server or {}
            stages = server.get("stages_ms") or {}
            slowest = max(stages.items(), key=lambda kv: kv[1]) if stages else None
            request_ms = server.get("request_ms")
            row += [_ms(request_ms) if request_ms is not None else "-",
                    f"{slowest[0]}: {slowest[1]:.1f}" if slowest else "-"]
        table.add_row(*row)
    return table


def write_json(report: BenchReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_json(), indent=2))


def plot(report: BenchReport, path: Path) -> None:
    """Three panels: p50/p99 against achieved throughput (one point per level), the latency CDF of each level,
    and, with the server's metrics, where a request's time went at each level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = report.levels
    fig, (curve, cdf, stages) = plt.subplots(1, 3, figsize=(18, 5.5))
    for mode, marker in (("concurrency", "o"), ("rate", "s")):
        picked = [r for r in levels if r.level.mode == mode and r.ok]
        if not picked:
            continue
        x = [r.throughput for r in picked]
        for key, style in (("p50", "-"), ("p99", "--")):
            curve.plot(x, [r.latency_ms[key] for r in picked], style, marker=marker,
                       label=f"{key}, {'closed loop' if mode == 'concurrency' else 'open loop'}")
        for r, xi in zip(picked, x):
            curve.annotate(r.level.label, (xi, r.latency_ms["p99"]), textcoords="offset points", xytext=(4, 4),
                           fontsize=8)
    curve.set(xlabel="throughput (successful requests/s)", ylabel="latency (ms)", title="latency vs throughput")
    curve.grid(alpha=0.3)
    curve.legend(fontsize=8)

    for r in levels:
        if r.cdf_ms:
            cdf.plot([ms for _, ms in r.cdf_ms], [p / 100 for p, _ in r.cdf_ms], label=r.level.label)
    cdf.set_xscale("log")
    cdf.set(xlabel="latency (ms, log scale)", ylabel="fraction of requests at or below", title="latency CDF per level")
    cdf.grid(alpha=0.3, which="both")
    cdf.legend(fontsize=8)

    _stage_bars(stages, levels)
    fig.suptitle(f"brainwave bench: {report.config.protocol} {report.config.address} {report.config.model}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _stage_bars(ax, levels) -> None:
    """Stacked mean ms per request: each pipeline stage, the rest of the server's time, and what the client saw
    on top (network, queueing before the server's handler, the client itself)."""
    with_server = [r for r in levels if r.server and r.server.get("stages_ms") and r.ok]
    if not with_server:
        ax.text(0.5, 0.5, "no server metrics\n(bench --metrics-url http://HOST:PORT/metrics)", ha="center",
                va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    names = list(dict.fromkeys(stage for r in with_server for stage in r.server["stages_ms"]))
    bottoms = [0.0] * len(with_server)
    x = range(len(with_server))
    for name in names:
        heights = [r.server["stages_ms"].get(name, 0.0) for r in with_server]
        ax.bar(x, heights, bottom=bottoms, label=name)
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    for label, part in (("server, outside stages", lambda r, b: max((r.server.get("request_ms") or b) - b, 0.0)),
                        ("client, network, queue", lambda r, b: max(r.latency_ms["mean"] - max(r.server.get("request_ms") or b, b), 0.0))):
        heights = [part(r, b) for r, b in zip(with_server, bottoms)]
        ax.bar(x, heights, bottom=bottoms, label=label, alpha=0.6)
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    ax.set_xticks(list(x), [r.level.label for r in with_server])
    ax.set(ylabel="mean ms per request", title="where the time goes (server metrics)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
