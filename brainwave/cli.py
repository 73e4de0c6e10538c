"""`brainwave` command line: package, serve, score, models (and the registry commands)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ banner out of people's terminals

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from brainwave.errors import BrainwaveError  # noqa: E402
from brainwave.featurizer.backend import backend_names  # noqa: E402
from brainwave.npu.numerics import Precision  # noqa: E402

# Piped output (files, CI logs, other programs) gets room for wide tables instead of rich's 80 columns.
console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
out = Console(width=None if sys.stdout.isatty() else 200)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    import grpc

    try:
        return args.func(args) or 0
    except BrainwaveError as exc:
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        return 1
    except grpc.RpcError as exc:
        console.print(f"[bold red]error:[/] the server answered {exc.code().name}: {exc.details()}", soft_wrap=True)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brainwave", description="Open Brainwave-style real-time inference service.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(metavar="COMMAND")

    package = sub.add_parser("package", help="validate a service_def.json and its files and write model.zip")
    package.add_argument("service_def", type=Path, help="service_def.json; the files it names are looked up beside it")
    package.add_argument("--out", type=Path, default=Path("model.zip"))
    package.set_defaults(func=cmd_package)

    serve = sub.add_parser("serve", help="serve a model.zip over TF Serving-compatible gRPC")
    serve.add_argument("model_zip", type=Path, nargs="?", help="the model.zip to serve (or use --base-path)")
    serve.add_argument("--base-path", type=Path, help="serve versions from BASE/<version>/model.zip (TF Serving layout)")
    serve.add_argument("--versions", default="latest", help="with --base-path: latest[:N], all, or 1,3 (default: latest)")
    serve.add_argument("--label", action="append", default=[], metavar="LABEL=VERSION", help="with --base-path, e.g. stable=1")
    _add_serve_options(serve)
    serve.set_defaults(func=cmd_serve)

    deploy = sub.add_parser("deploy", help="fetch NAME[:VERSION|@TAG] from the model registry (into a local cache) and serve it")
    deploy.add_argument("target", help="NAME (latest), NAME:VERSION or NAME@TAG (the highest version with that tag)")
    _add_serve_options(deploy)
    try:
        from brainwave.registry.cli import add_store_arguments
        add_store_arguments(deploy)
    except ImportError:
        pass
    deploy.set_defaults(func=cmd_deploy)

    score = sub.add_parser("score", help="score images against a running server and print the top classes")
    score.add_argument("images", nargs="+", type=Path)
    score.add_argument("--address", default="localhost:50051", help="HOST:PORT of the server")
    score.add_argument("--model", default="", help="model name (default: the server's only model)")
    score.add_argument("--model-version", type=int, default=None)
    score.add_argument("--labels", type=Path, help="text file with one class name per line")
    score.add_argument("--top", type=int, default=5)
    score.add_argument("--json", action="store_true", help="print JSON instead of a table")
    score.add_argument("--key", default=os.environ.get("BRAINWAVE_KEY"), help="access key (or BRAINWAVE_KEY)")
    score.add_argument("--ssl", action="store_true", help="use TLS")
    score.add_argument("--ca", type=Path, help="CA certificate to trust for TLS")
    score.set_defaults(func=cmd_score)

    _add_admin_commands(sub)

    models = sub.add_parser("models", help="list the featurizer catalog (and registered models)")
    models.set_defaults(func=cmd_models)
    try:
        from brainwave.fpga.perf import add_estimate_arguments
        add_estimate_arguments(models)
    except ImportError:  # the fpga package is optional
        pass
    models_sub = models.add_subparsers(metavar="ACTION")
    _add_registry_commands(sub, models_sub)

    compile_ = sub.add_parser("compile", help="compile a catalog featurizer to an NPU program file (docs/isa.md)")
    compile_.add_argument("model_ref", help="catalog featurizer, e.g. efficientnet-lite0 (see `brainwave models`)")
    compile_.add_argument("--precision", default="bfp20", choices=Precision.labels(),
                          help="bfp20 (default), bfp16 or bfp12 (docs/numerics.md)")
    compile_.add_argument("--weights", type=Path, help="weights file (default: the catalog's)")
    compile_.add_argument("--out", type=Path, required=True, help="program file to write (.bwnp zip)")
    compile_.set_defaults(func=cmd_compile)
    return parser


def _add_serve_options(parser) -> None:
    parser.add_argument("--load-policy", choices=["availability", "resource"], default="availability",
                       help="on version changes: load new versions first (default) or unload old ones first")
    parser.add_argument("--port", type=int, default=50051)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--name", help="model name clients ask for (default: the zip's folder or file name)")
    parser.add_argument("--version", type=int, default=1, help="version number to serve the model as")
    parser.add_argument("--backend", default="emulator", choices=backend_names(),
                        help="featurizer backend: emulator (bit-exact NPU in numpy, default), fpga or float (TensorFlow)")
    parser.add_argument("--precision", default=None, choices=Precision.labels(),
                        help="NPU precision for emulator/fpga backends: bfp20 (default), bfp16, bfp12")
    parser.add_argument("--board", default=None, help="fpga backend: board overlay under bitstreams/ (kv260, zcu104, pynq-z2)")
    parser.add_argument("--simulate", action=argparse.BooleanOptionalAction, default=None,
                       help="fpga backend: run on the simulated board (default: simulate unless on a Zynq board)")
    parser.add_argument("--max-message-mb", type=int, default=64, help="largest gRPC message accepted or sent")
    parser.add_argument("--max-image-pixels", type=int, default=40_000_000)
    parser.add_argument("--workers", type=int, default=16, help="gRPC worker threads")
    parser.add_argument("--metrics-port", type=int, default=None, help="expose Prometheus metrics on this port")
    parser.add_argument("--keys-file", type=Path, help='JSON {"primary": ..., "secondary": ...}; re-read when it changes')
    parser.add_argument("--tls-cert", type=Path, help="server certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, help="server private key (PEM)")
    parser.add_argument("--tls-client-ca", type=Path, help="require client certificates signed by this CA (mutual TLS)")


def _add_admin_commands(sub) -> None:
    def admin_parser(name: str, help_text: str):
        parser = sub.add_parser(name, help=help_text)
        parser.add_argument("model", help="model name")
        parser.add_argument("--address", default="localhost:50051")
        parser.add_argument("--key", default=os.environ.get("BRAINWAVE_KEY"), help="access key (or BRAINWAVE_KEY)")
        parser.add_argument("--ssl", action="store_true")
        parser.add_argument("--ca", type=Path)
        return parser

    reload = admin_parser("reload", "change the versions and labels a running server serves (availability-preserving)")
    reload.add_argument("--base-path", required=True, help="BASE/<version>/model.zip directory, or registry:NAME")
    reload.add_argument("--versions", default="latest", help="latest[:N], all, or 1,3")
    reload.add_argument("--label", action="append", default=[], metavar="LABEL=VERSION")
    reload.set_defaults(func=cmd_reload)
    versions = admin_parser("versions", "show each version's state, labels, traffic, errors, latency and canary agreement")
    versions.set_defaults(func=cmd_versions)
    canary = admin_parser("canary", "route a share of unpinned traffic to a canary version")
    canary.add_argument("--version", type=int, help="canary version (loaded if needed); omit with --clear")
    canary.add_argument("--share", type=float, default=0.1, help="share of unpinned requests (0..1)")
    canary.add_argument("--mirror", type=float, default=0.0, help="share of canary-split traffic also run on the other side")
    canary.add_argument("--clear", action="store_true", help="stop the canary")
    canary.set_defaults(func=cmd_canary)
    promote = admin_parser("promote", "make the canary the stable version (and unload the old one)")
    promote.add_argument("--keep-previous", action="store_true")
    promote.set_defaults(func=cmd_promote)
    rollback = admin_parser("rollback", "return to an older version (loaded and warmed before traffic moves)")
    rollback.add_argument("--to", type=int, required=True, dest="to_version")
    rollback.add_argument("--keep-others", action="store_true")
    rollback.set_defaults(func=cmd_rollback)


def _add_registry_commands(sub, models_sub) -> None:
    try:
        from brainwave.registry import cli as registry_cli
    except ImportError:
        return
    registry_cli.add_register_parser(sub)
    registry_cli.add_models_subcommands(models_sub)


# --- commands ------------------------------------------------------------------------------------
def cmd_package(args) -> int:
    from brainwave.pipeline.definition import BrainwaveStage, ServiceDefinition, TensorflowStage

    try:
        data = json.loads(args.service_def.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BrainwaveError(f"cannot read {args.service_def}: {exc}") from None
    definition = ServiceDefinition.from_json(data)
    base = args.service_def.parent
    for stage in definition.pipeline:
        if isinstance(stage, TensorflowStage):
            stage.source = base / stage.model_path
        elif isinstance(stage, BrainwaveStage) and stage.weights_path:
            stage.weights_source = base / stage.weights_path
    path = definition.save(args.out)
    out.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {len(definition.pipeline)} stages)")
    return 0


def default_model_name(model_zip: Path) -> str:
    return model_zip.resolve().parent.name if model_zip.stem == "model" else model_zip.stem


def cmd_serve(args) -> int:
    from brainwave.serving.versions import DirectorySource, ModelPlan, VersionPolicy

    if (args.model_zip is None) == (args.base_path is None):
        raise BrainwaveError("give either a model.zip or --base-path")
    plan = None
    if args.base_path is not None:
        plan = ModelPlan(args.name or args.base_path.resolve().name, DirectorySource(args.base_path),
                         VersionPolicy.parse(args.versions), _labels(args.label))
    return _serve(args, plan=plan)


def cmd_deploy(args) -> int:
    from brainwave.registry.cli import parse_target, registry_from
    from brainwave.serving.registry_source import RegistrySource
    from brainwave.serving.versions import ModelPlan, VersionPolicy

    name, version, tag = parse_target(args.target)
    registry = registry_from(args)
    record = registry.get(name, version, tag)
    console.print(f"deploying {name} version {record.version} from {registry.store.describe()}", soft_wrap=True)
    args.model_zip = None
    plan = ModelPlan(args.name or name, RegistrySource(registry, name), VersionPolicy("specific", specific=(record.version,)))
    return _serve(args, plan=plan, registry=registry)


def _serve(args, plan=None, registry=None) -> int:
    """Serve args.model_zip, or the versions a plan names; until SIGINT/SIGTERM."""
    from brainwave.pipeline import Pipeline
    from brainwave.serving.servables import ServableManager
    from brainwave.serving.server import ModelServer, ServerConfig

    backend = args.backend
    options = {key: value for key, value in (("precision", args.precision), ("board", args.board),
                                             ("simulate", args.simulate)) if value is not None}

    def load(path: Path) -> Pipeline:
        return Pipeline.load(path, backend=backend, backend_options=options, max_image_pixels=args.max_image_pixels)

    manager = ServableManager()
    if args.model_zip is not None:
        name = args.name or default_model_name(args.model_zip)
        with console.status(f"Loading {args.model_zip} on the {backend} backend (building graphs, warming up)..."):
            pipeline = load(args.model_zip)
        _print_stages(name, args.version, pipeline, backend)
        manager.add(name, args.version, pipeline)
    keys = None
    if args.keys_file:
        from brainwave.serving.auth import KeyFile
        try:
            keys = KeyFile(args.keys_file)
        except ValueError as exc:
            raise BrainwaveError(str(exc)) from None
    config = ServerConfig(host=args.host, port=args.port, max_message_bytes=args.max_message_mb << 20,
                          workers=args.workers, metrics_port=args.metrics_port, keys=keys, tls_cert=args.tls_cert,
                          tls_key=args.tls_key, tls_client_ca=args.tls_client_ca, load_policy=args.load_policy)
    server = ModelServer(manager, config, loader=load, registry=registry)
    if plan is not None:
        with console.status(f"Loading {plan.name} from {plan.source!r} on the {backend} backend..."):
            server.controller.apply([plan])
    port = server.start()
    served = ", ".join(f"{n} v{','.join(str(s.version) for s in manager.versions(n))}" for n in manager.model_names())
    console.print(f"[green]Serving[/] {served} on {args.host}:{port} (gRPC Predict, model status, admin, health, "
                  f"reflection). Ctrl-C to stop.", soft_wrap=True)
    stopping = threading.Event()

    def _stop(signum, frame):
        if not stopping.is_set():
            stopping.set()
            console.print(f"received {signal.Signals(signum).name}, finishing in-flight requests...")
            threading.Thread(target=server.stop, args=(5.0,), daemon=True).start()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    server.wait()
    manager.close()
    console.print("stopped")
    return 0


def _labels(pairs: list[str]) -> dict[str, int]:
    labels = {}
    for pair in pairs:
        label, _, version = pair.partition("=")
        if not label or not version.isdigit():
            raise BrainwaveError(f"--label wants LABEL=VERSION, got {pair!r}")
        labels[label] = int(version)
    return labels


def _admin(args):
    from brainwave.admin_client import ModelAdminClient

    return ModelAdminClient(args.address, use_ssl=args.ssl, access_token=args.key,
                            root_certificates=args.ca.read_bytes() if args.ca else None)


def cmd_reload(args) -> int:
    from brainwave.serving.versions import VersionPolicy

    with _admin(args) as admin, console.status(f"reloading {args.model} ({args.versions})..."):
        admin.reload({args.model: (args.base_path, VersionPolicy.parse(args.versions), _labels(args.label))})
    return cmd_versions(args)


def cmd_versions(args) -> int:
    with _admin(args) as admin:
        figures = admin.figures(args.model)
    table = Table(title=f"{args.model}: versions")
    for column in ("version", "state", "labels", "canary share", "requests", "errors", "p50 ms", "p99 ms",
                   "mirrored", "top-1 agreement"):
        table.add_column(column, justify="right" if column not in ("state", "labels") else "left")
    for f in figures:
        table.add_row(str(f.version), f.state + (f" ({f.error})" if f.error else ""), ", ".join(f.labels),
                      f"{f.canary_share:.0%}" if f.canary_share else "", str(f.requests), str(f.errors),
                      f"{f.p50_ms:.1f}" if f.requests else "", f"{f.p99_ms:.1f}" if f.requests else "",
                      str(f.mirrored) if f.mirrored else "", f"{f.top1_agreement:.1%}" if f.mirrored else "")
    out.print(table)
    return 0


def cmd_canary(args) -> int:
    if not args.clear and args.version is None:
        raise BrainwaveError("give --version V (and --share), or --clear")
    with _admin(args) as admin:
        admin.set_canary(args.model, None if args.clear else args.version, args.share, args.mirror)
    return cmd_versions(args)


def cmd_promote(args) -> int:
    with _admin(args) as admin:
        response = admin.promote(args.model, keep_previous=args.keep_previous)
    console.print(f"version {response.stable_version} is now stable" +
                  (f"; unloaded {', '.join(map(str, response.unloaded))}" if response.unloaded else ""))
    return cmd_versions(args)


def cmd_rollback(args) -> int:
    with _admin(args) as admin, console.status(f"rolling {args.model} back to version {args.to_version}..."):
        response = admin.rollback(args.model, args.to_version, keep_others=args.keep_others)
    console.print(f"version {response.stable_version} is now stable" +
                  (f"; unloaded {', '.join(map(str, response.unloaded))}" if response.unloaded else ""))
    return cmd_versions(args)


def _print_stages(name: str, version: int, pipeline, backend: str) -> None:
    table = Table(title=f"{name} v{version}")
    table.add_column("#")
    table.add_column("stage")
    for index, label in enumerate(pipeline.stage_labels):
        table.add_row(str(index), label)
    console.print(table)


def cmd_score(args) -> int:
    import numpy as np

    from brainwave.client import PredictionClient

    labels = args.labels.read_text().splitlines() if args.labels else None
    ca = args.ca.read_bytes() if args.ca else None
    results = []
    with PredictionClient(args.address, use_ssl=args.ssl, access_token=args.key, model_name=args.model,
                          model_version=args.model_version, root_certificates=ca) as client:
        for image in args.images:
            scores = np.asarray(client.score_image(image)).reshape(-1)
            top = np.argsort(-scores, kind="stable")[: args.top]
            spec = client.last_model_spec
            results.append({
                "image": str(image), "model": spec.name, "version": spec.version.value,
                "top": [{"index": int(i), "label": labels[i] if labels and i < len(labels) else None,
                         "score": float(scores[i])} for i in top],
            })
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for result in results:
        table = Table(title=f"{Path(result['image']).name}  ({result['model']} v{result['version']})")
        table.add_column("rank", justify="right")
        table.add_column("class", justify="right")
        table.add_column("label")
        table.add_column("score", justify="right")
        for rank, entry in enumerate(result["top"], 1):
            table.add_row(str(rank), str(entry["index"]), entry["label"] or "", f"{entry['score']:.4f}")
        out.print(table)
    return 0


def cmd_models(args) -> int:
    from brainwave.models import catalog_entries

    if getattr(args, "estimate", None):
        from brainwave.fpga.perf import run_estimate

        return run_estimate(args, out)

    table = Table(title="Featurizer catalog (type: brainwave stages)")
    for column in ("model_ref", "versions", "input", "output", "weights", "description"):
        table.add_column(column)
    for spec in catalog_entries():
        table.add_row(spec.model_ref, ", ".join(spec.versions), "x".join(map(str, spec.input_shape)),
                      str(list(spec.output_dims)), spec.weights_note, spec.description)
    out.print(table)
    return 0


def cmd_compile(args) -> int:
    from brainwave.models import build_featurizer, resolve_featurizer
    from brainwave.npu.compiler import compile_keras

    try:
        with console.status(f"building {args.model_ref}..."):
            model = build_featurizer(resolve_featurizer(args.model_ref), args.weights)
        with console.status(f"compiling {args.model_ref} for the NPU ({args.precision})..."):
            program = compile_keras(model, precision=args.precision)
    except (LookupError, ValueError) as exc:  # unknown model, unknown precision, unsupported layer
        raise BrainwaveError(str(exc)) from exc
    path = program.save(args.out)
    out.print(f"wrote {path}: {len(program.instructions)} instructions, {program.macs / 1e9:.2f} GMAC, "
              f"weights {len(program.weights) / 1e6:.1f} MB, arena {program.arena_words * 4 / 1e6:.1f} MB; "
              f"list it with `python -m brainwave.npu.isa --dump {path}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
