"""Server memory under a hostile mix: RSS of a `brainwave serve` process before and after, and its peak.

    python benchmarks/hostile.py [--pipeline resnet50] [--clients 16] [--rounds 3] [--json OUT]

The mix (each kind sent by every client, every round): one string value broadcast to shapes of 2^21, 2^40 and
2^32 x 2^32 elements; 65 images; 40-megapixel PNGs, two per request, far more at once than the server's
decoded-pixel budget; 64-image requests cancelled after 0.3 s; and truncated images. After the mix a real photo
must still score. A request must not cost memory out of proportion to its size: the table shows the bytes sent
next to what the server's RSS grew by. Not a test (memory depends on the allocator); it prints and writes JSON.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from PIL import Image
from rich.console import Console
from rich.table import Table

from common import PHOTO, REPO, ServeProcess, memory_mib, pipeline_builder  # a sibling script (benchmarks/ is on sys.path)

console = Console(width=None if sys.stdout.isatty() else 200)


def big_png(pixels: int = 39_900_000) -> bytes:
    width = 7700
    buffer = io.BytesIO()
    Image.new("RGB", (width, pixels // width), (120, 60, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def hostile_requests(photo: bytes) -> dict[str, object]:
    from brainwave.protocol.api import api

    def strings(values, shape):
        request = api().PredictRequest()
        tensor = request.inputs["images"]
        tensor.dtype = api().DataType["DT_STRING"]
        tensor.string_val.extend(values)
        for size in shape:
            tensor.tensor_shape.dim.add().size = size
        return request

    huge = big_png()
    return {
        "broadcast 2^21": strings([photo[:32]], [2 ** 21]),
        "broadcast 2^40": strings([photo[:32]], [2 ** 40]),
        "broadcast 2^32 x 2^32": strings([photo[:32]], [2 ** 32, 2 ** 32]),
        "65 images": strings([b"x"] * 65, [65]),
        "two 40 MP PNGs": strings([huge, huge], [2]),
        "truncated PNG": strings([photo[: len(photo) // 3]], [1]),
        "64 photos, cancelled at 0.3 s": strings([photo] * 64, [64]),
    }


def send(address: str, name: str, request) -> str:
    from brainwave.protocol.api import api

    a = api()
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 256 << 20)]) as channel:
        call = channel.unary_unary("/tensorflow.serving.PredictionService/Predict",
                                   request_serializer=a.PredictRequest.SerializeToString,
                                   response_deserializer=a.PredictResponse.FromString)
        if name.endswith("cancelled at 0.3 s"):
            future = call.future(request, timeout=300)
            time.sleep(0.3)
            future.cancel()
            return "CANCELLED (by us)"
        try:
            call(request, timeout=300)
            return "OK"
        except grpc.RpcError as exc:
            return exc.code().name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="resnet50", choices=["resnet50", "efficientnet-lite0"])
    parser.add_argument("--backend", default="float")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    workdir = REPO / "build" / "hostile"
    model_zip = pipeline_builder(args.pipeline).build_model_zip(workdir / args.pipeline / "model.zip")
    server = ServeProcess(model_zip, "--backend", args.backend, "--max-message-mb", "256")
    address = server.address
    try:
        photo = PHOTO.read_bytes()
        requests = hostile_requests(photo)
        assert send(address, "photo", requests["truncated PNG"]) == "INVALID_ARGUMENT"
        before = memory_mib(server.process.pid)
        codes: dict[str, set[str]] = {name: set() for name in requests}
        with console.status(f"{args.clients} clients x {args.rounds} rounds of {len(requests)} hostile requests..."):
            with ThreadPoolExecutor(args.clients) as pool:
                for _ in range(args.rounds):
                    jobs = [(name, pool.submit(send, address, name, request))
                            for name, request in requests.items() for _ in range(args.clients)]
                    for name, job in jobs:
                        codes[name].add(job.result())
        time.sleep(2.0)
        after = memory_mib(server.process.pid)
        from brainwave.client import PredictionClient

        with PredictionClient(address) as client:
            still_serving = client.score_image(photo).shape == (1000,)
    finally:
        server.stop()

    table = Table(title=f"{args.pipeline} on {args.backend}: {args.clients} clients x {args.rounds} rounds")
    for column in ("request", "bytes sent", "status codes"):
        table.add_column(column, justify="right" if column == "bytes sent" else "left")
    for name, request in requests.items():
        table.add_row(name, f"{len(request.SerializeToString()):,}", ", ".join(sorted(codes[name])))
    console.print(table)
    console.print(f"server RSS: {before[0]:.0f} MiB before, {after[0]:.0f} MiB after, peak {after[1]:.0f} MiB "
                  f"(peak before the mix {before[1]:.0f} MiB); a real photo still scores: {still_serving}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "pipeline": args.pipeline, "backend": args.backend, "clients": args.clients, "rounds": args.rounds,
            "rss_mb_before": before[0], "rss_mb_after": after[0], "peak_rss_mb_before": before[1],
            "peak_rss_mb": after[1], "still_serving": still_serving,
            "requests": {name: {"bytes": len(r.SerializeToString()), "codes": sorted(codes[name])}
                         for name, r in requests.items()}}, indent=2))
        console.print(f"wrote {args.json}")
    return 0 if still_serving else 1


if __name__ == "__main__":
    raise SystemExit(main())
