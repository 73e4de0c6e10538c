"""Throughput of 1, 2, 3... `brainwave serve` replicas behind HAProxy on this machine, with the harness the
replica tests use (deploy/local/cluster.py), and what one replica costs (service time, memory).

    .venv/bin/python benchmarks/replicas.py [--replicas 1,2,3] [--clients 8] [--seconds 30] [--json out.json]

Every replica runs on the same cores here, so more replicas cannot add cores: the table shows what the
proxy and the replicas cost on a shared machine, not what separate machines would give (docs/deploy.md
works that figure out from the per-replica service time measured here).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from common import PHOTO, REPO, memory_mib, pipeline_builder, script_module  # a sibling script


def measure(cluster, model: Path, workdir: Path, count: int, photo: bytes, clients: int, seconds: float,
            single: dict) -> dict:
    """One replica count: start the replicas behind HAProxy, warm them, run the closed loop for `seconds`."""
    with cluster.LocalCluster(workdir, [str(model), "--drain-delay", "1"], count) as local:
        warm = cluster.Load(local.proxy.address, photo, clients=clients, seconds=600).start()
        warm.wait_for(2 * clients)  # every replica has answered a few calls
        warm.stop()
        if count == 1 and not single:  # one client: the service time of one call with the replica to itself
            alone = cluster.Load(local.proxy.address, photo, clients=1, seconds=seconds / 2).run()
            single.update(service_ms=1000 * alone.seconds / max(alone.ok, 1), calls=alone.ok)
        before = local.proxy.requests()
        load_before = os.getloadavg()[0]
        result = cluster.Load(local.proxy.address, photo, clients=clients, seconds=seconds).run()
        memory = [memory_mib(r.process.pid) for r in local.replicas.values()]  # (now, peak)
        return {"replicas": count, "clients": clients, "seconds": result.seconds, "calls": result.ok,
                "failed": result.failures, "per_second": result.throughput,
                "per_replica": {n: c - before[n] for n, c in local.proxy.requests().items()},
                "load_average": [load_before, os.getloadavg()[0]],
                "rss_mib": [now for now, _ in memory], "peak_rss_mib": [peak for _, peak in memory]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", default="1,2,3")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time per replica count and round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="the replica counts are measured in turn this many times (the cores are shared: "
                             "other work comes and goes)")
    parser.add_argument("--pipeline", default="efficientnet-lite0", choices=["efficientnet-lite0", "resnet50"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    cluster = script_module(REPO / "deploy" / "local" / "cluster.py", "brainwave_local_cluster")
    builder = pipeline_builder(args.pipeline)
    photo = PHOTO.read_bytes()
    counts = [int(n) for n in args.replicas.split(",")]
    rows, single = [], {}
    with tempfile.TemporaryDirectory(prefix="brainwave-replicas-") as tmp:
        model = builder.build_model_zip(Path(tmp) / "model.zip")
        for round_ in range(args.rounds):
            for count in counts:
                row = measure(cluster, model, Path(tmp) / f"r{round_}n{count}", count, photo, args.clients,
                              args.seconds, single)
                rows.append(row)
                print(f"round {round_ + 1}, {count} replica(s): {row['per_second']:.2f} calls/s ({row['calls']} in "
                      f"{row['seconds']:.0f} s, {row['failed']} failed), per replica {row['per_replica']}, "
                      f"load average {row['load_average'][0]:.1f}, peak RSS {max(row['peak_rss_mib']):.0f} MiB",
                      flush=True)
    print(f"\n{args.pipeline} on the emulator, {args.clients} clients, {os.cpu_count()} cores shared with "
          f"other work; median (min-max) of {args.rounds} rounds")
    print("| replicas | calls/s | vs 1 replica | failed |\n| --- | --- | --- | --- |")
    base = statistics.median(r["per_second"] for r in rows if r["replicas"] == counts[0])
    for count in counts:
        rates = [r["per_second"] for r in rows if r["replicas"] == count]
        failed = sum(r["failed"] for r in rows if r["replicas"] == count)
        median = statistics.median(rates)
        print(f"| {count} | {median:.1f} ({min(rates):.1f}-{max(rates):.1f}) | {median / base:.2f}x | {failed} |")
    print(f"one call alone: {single['service_ms']:.0f} ms ({single['calls']} calls, 1 client, 1 replica); "
          f"peak RSS of a replica {max(max(r['peak_rss_mib']) for r in rows):.0f} MiB")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"pipeline": args.pipeline, "cores": os.cpu_count(), "rows": rows,
                                         "single_client": single}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
