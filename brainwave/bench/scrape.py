"""The server's side of a load level, read from its Prometheus metrics before and after: the mean time per item
in each pipeline stage and the mean time a call spent in the server."""
from __future__ import annotations

from dataclasses import dataclass

from brainwave.bench.targets import BenchError


@dataclass(frozen=True)
class Snapshot:
    stages: dict[str, tuple[float, float]]  # stage label -> (sum of seconds, count)
    requests: tuple[float, float]  # Predict calls: (sum of seconds, count)


def parse(text: str, model: str = "") -> Snapshot:
    from prometheus_client.parser import text_string_to_metric_families

    stages: dict[str, list[float]] = {}
    requests = [0.0, 0.0]
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if model and labels.get("model") not in (None, model):
                continue
            kind = sample.name.rsplit("_", 1)[-1]
            if kind not in ("sum", "count"):
                continue
            slot = 0 if kind == "sum" else 1
            if family.name == "brainwave_stage_seconds":
                stages.setdefault(labels["stage"], [0.0, 0.0])[slot] += sample.value
            elif family.name == "brainwave_request_seconds" and labels.get("method", "").endswith("/Predict"):
                requests[slot] += sample.value
    return Snapshot({k: (v[0], v[1]) for k, v in stages.items()}, (requests[0], requests[1]))


def breakdown(before: Snapshot, after: Snapshot) -> dict:
    """{"stages_ms": {stage: mean ms per item}, "request_ms": mean ms per Predict call in the server}, over
    what happened between the two snapshots."""
    def mean_ms(a: tuple[float, float], b: tuple[float, float]) -> float | None:
        count = b[1] - a[1]
        return (b[0] - a[0]) / count * 1000 if count > 0 else None

    stages = {stage: mean_ms(before.stages.get(stage, (0.0, 0.0)), value) for stage, value in after.stages.items()}
    return {"stages_ms": {k: v for k, v in stages.items() if v is not None},
            "request_ms": mean_ms(before.requests, after.requests)}


async def scrape(client, url: str, model: str = "") -> Snapshot:
    """`client`: an httpx.AsyncClient."""
    try:
        response = await client.get(url)
    except Exception as exc:  # noqa: BLE001 - any transport failure is "cannot reach", in one line
        raise BenchError(f"cannot read the server's metrics at {url}: {type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        raise BenchError(f"the server's metrics at {url} answered HTTP {response.status_code}")
    return parse(response.text, model)
