"""`brainwave` command line: package, serve, score, models (and the registry commands).

The CLI parses and prints; the work is in the library. Every failure a user can cause ends in one line on
stderr and a non-zero exit, never a traceback (run with -v to see one for an internal error).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from brainwave.errors import BrainwaveError
from brainwave.featurizer.backend import backend_names
from brainwave.npu.numerics import Precision

# Piped output (files, CI logs, other programs) gets room for wide tables instead of rich's 80 columns.
console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
out = Console(width=None if sys.stdout.isatty() else 200)
log = logging.getLogger("brainwave")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", False)
    configure_logging(verbose, getattr(args, "log_format", "text"))
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    import grpc

    try:
        return args.func(args) or 0
    except BrainwaveError as exc:
        _error(str(exc))
        return 1
    except grpc.RpcError as exc:
        _error(rpc_error_text(exc, getattr(args, "ssl", False) or getattr(args, "ca", None) is not None))
        return 1
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as exc:  # the light core (client) without the [serve] extra
        if verbose:
            raise
        _error(f"this command needs brainwave's server parts (missing module {exc.name}): "
               "pip install 'brainwave[serve]'")
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if verbose:
            raise
        _error(f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)")
        return 1


def _error(text: str) -> None:
    console.print("[bold red]error:[/] ", end="")
    console.print(text, soft_wrap=True, markup=False, highlight=False)


def configure_logging(verbose: bool, log_format: str = "text") -> None:
    from brainwave.logsetup import configure

    configure(verbose, log_format)


def rpc_error_text(exc, used_tls: bool) -> str:
    """One line for a failed call, with a hint where the failure usually means a TLS mismatch."""
    code, details = exc.code(), exc.details() or ""
    text = f"the server answered {code.name}: {details}"
    if code.name == "UNAVAILABLE":
        lowered = details.lower()
        if not used_tls and ("socket closed" in lowered or "connection reset" in lowered):
            text += " (if the server uses TLS, add --ssl and --ca CA.pem)"
        elif used_tls and ("ssl" in lowered or "handshake" in lowered or "wrong_version" in lowered):
            text += " (the server may not use TLS: drop --ssl/--ca; or check that --ca signed its certificate)"
    return text


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
    serve.add_argument("--base-path", help="serve versions from BASE/<version>/model.zip (TF Serving layout), "
                                           "or registry:NAME for a model in the registry")
    serve.add_argument("--versions", default="latest", help="with --base-path: latest[:N], all, or 1,3 (default: latest)")
    serve.add_argument("--label", action="append", default=[], metavar="LABEL=VERSION", help="with --base-path, e.g. stable=1")
    _add_serve_options(serve)
    _add_store_arguments(serve)
    serve.set_defaults(func=cmd_serve)

    deploy = sub.add_parser("deploy", help="fetch NAME[:VERSION|@TAG] from the model registry (into a local cache) and serve it")
    deploy.add_argument("target", help="NAME (latest), NAME:VERSION, NAME@KEY or NAME@KEY=VALUE (the highest version "
                                       "with that tag)")
    _add_serve_options(deploy)
    _add_store_arguments(deploy)
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
    score.add_argument("--ssl", action="store_true", help="use TLS (implied by --ca)")
    score.add_argument("--ca", type=Path, help="CA certificate to trust for TLS")
    score.set_defaults(func=cmd_score)

    health = sub.add_parser("health", help="ask a server's gRPC health service; exit 0 only if it is SERVING "
                                           "(the container's HEALTHCHECK)")
    health.add_argument("--address", default="localhost:50051", help="HOST:PORT of the server")
    health.add_argument("--service", default="", help="service to ask about (default: the whole server)")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds")
    health.add_argument("--ssl", action="store_true", help="use TLS (implied by --ca)")
    health.add_argument("--ca", type=Path, help="CA certificate to trust for TLS")
    health.set_defaults(func=cmd_health)

    _add_admin_commands(sub)
    from brainwave.image import add_image_commands

    add_image_commands(sub)
    from brainwave.bench.cli import add_bench_parser

    add_bench_parser(sub)

    models = sub.add_parser("models", help="list the featurizer catalog (and registered models)")
    models.set_defaults(func=cmd_models)
    try:
        from brainwave.fpga.perf import add_estimate_arguments
        add_estimate_arguments(models)
    except ImportError:  # the fpga package is optional
        pass
    models_sub = models.add_subparsers(metavar="ACTION")
    _add_registry_commands(sub, models_sub)

    compile_ = sub.add_parser("compile", help="compile a featurizer to an NPU program file (docs/compiler.md)")
    compile_.add_argument("model_ref", help="catalog featurizer, e.g. efficientnet-lite0 (see `brainwave models`), "
                                            "or a model file: .onnx (opsets 13-21) or .keras")
    compile_.add_argument("--precision", default="bfp20", choices=Precision.labels(),
                          help="bfp20 (default), bfp16 or bfp12 (docs/numerics.md)")
    compile_.add_argument("--weights", type=Path, help="weights file (default: the catalog's)")
    compile_.add_argument("--out", type=Path, required=True, help="program file to write (.bwnp zip)")
    compile_.set_defaults(func=cmd_compile)
    return parser


def _add_serve_options(parser) -> None:
    parser.add_argument("--load-policy", choices=["availability", "resource"], default="availability",
                       help="on version changes: load new versions first (default) or unload old ones first")
    parser.add_argument("--port", type=int, default=os.environ.get("BRAINWAVE_PORT", "50051"),
                        help="port to listen on (default: BRAINWAVE_PORT or 50051)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: every interface)")
    parser.add_argument("--name", help="model name clients ask for (default: the zip's folder or file name)")
    parser.add_argument("--version", type=int, default=1, help="version number to serve the model as")
    parser.add_argument("--backend", default="emulator", choices=backend_names(),
                        help="featurizer backend: emulator (bit-exact NPU, default), fpga or float (TensorFlow)")
    parser.add_argument("--precision", default=None, choices=Precision.labels(),
                        help="NPU precision for emulator/fpga backends: bfp20 (default), bfp16, bfp12")
    parser.add_argument("--board", default=None, help="fpga backend: board overlay under bitstreams/ (kv260, zcu104, pynq-z2)")
    parser.add_argument("--simulate", action=argparse.BooleanOptionalAction, default=None,
                       help="fpga backend: run on the simulated board (default: simulate unless on a Zynq board)")
    parser.add_argument("--tf-threads", type=int, default=None,
                        help="threads of each TensorFlow pool (default: 1 with the emulator and fpga backends, whose "
                             "TensorFlow stages are light; one per core with the float backend)")
    parser.add_argument("--npu-threads", type=int, default=None,
                        help="emulator backend: threads of the native NPU executor (default: the cores TensorFlow "
                             "does not use, at least 1)")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false",
                        help="load without a warm-up run (by default: the model's own warm-up inputs, or zeros "
                             "through the stages whose input shape is fixed)")
    parser.add_argument("--allow-any-op", action="store_true",
                        help="trusted models only: serve graphs with ops outside the allowlist (file I/O...)")
    limits = parser.add_argument_group("limits (per request and per server)")
    limits.add_argument("--max-message-mb", type=int, default=64, help="largest gRPC message accepted or sent")
    limits.add_argument("--max-image-pixels", type=int, default=40_000_000, help="per image")
    limits.add_argument("--max-items", type=int, default=64, help="batch-1 items per request")
    limits.add_argument("--max-request-pixels", type=int, default=80_000_000, help="decoded pixels per request")
    limits.add_argument("--max-inflight-pixels", type=int, default=80_000_000,
                        help="decoded pixels of all requests in flight (bounds the server's decode memory)")
    limits.add_argument("--max-concurrent-rpcs", type=int, default=64,
                        help="RPCs running or queued before the server answers RESOURCE_EXHAUSTED")
    limits.add_argument("--workers", type=int, default=16, help="gRPC worker threads")
    security = parser.add_argument_group("security")
    security.add_argument("--keys-file", type=Path, help='JSON {"primary": ..., "secondary": ...}; re-read when it changes')
    security.add_argument("--tls-cert", type=Path, help="server certificate (PEM)")
    security.add_argument("--tls-key", type=Path, help="server private key (PEM)")
    security.add_argument("--tls-client-ca", type=Path, help="require client certificates signed by this CA (mutual TLS)")
    security.add_argument("--admin-without-keys", action="store_true",
                          help="allow reloads, canary, promote and rollback on a server without API keys "
                               "(refused by default)")
    security.add_argument("--model-root", type=Path, action="append", default=[],
                          help="a directory reloads may load base paths from (repeatable; --base-path is one)")
    observe = parser.add_argument_group("REST and observability (docs/observability.md)")
    observe.add_argument("--rest-port", type=int, default=None,
                         help="also serve TF Serving's REST API on this port (same keys, limits and TLS as gRPC)")
    observe.add_argument("--metrics-port", type=int, default=None, help="Prometheus metrics at /metrics on this port")
    observe.add_argument("--metrics-host", default=None, help="address the metrics port listens on (default: --host)")
    observe.add_argument("--log-format", choices=["text", "json"], default="text",
                         help="json: one JSON object per line, with the request id of the call it belongs to")
    drain = parser.add_argument_group("shutdown (SIGTERM drains; docs/deploy.md)")
    drain.add_argument("--drain-delay", type=float, metavar="SECONDS", default=os.environ.get("BRAINWAVE_DRAIN_DELAY", "0"),
                       help="on SIGTERM, report NOT_SERVING but keep answering this long, so load balancers stop "
                            "sending first (default: BRAINWAVE_DRAIN_DELAY or 0)")
    drain.add_argument("--grace", type=float, metavar="SECONDS", default=os.environ.get("BRAINWAVE_GRACE", "5"),
                       help="then the time calls in flight get to finish (default: BRAINWAVE_GRACE or 5)")


def _add_store_arguments(parser) -> None:
    from brainwave.registry.cli import add_store_arguments

    add_store_arguments(parser)


def _add_admin_commands(sub) -> None:
    def admin_parser(name: str, help_text: str):
        parser = sub.add_parser(name, help=help_text)
        parser.add_argument("model", help="model name")
        parser.add_argument("--address", default="localhost:50051")
        parser.add_argument("--key", default=os.environ.get("BRAINWAVE_KEY"), help="access key (or BRAINWAVE_KEY)")
        parser.add_argument("--ssl", action="store_true", help="use TLS (implied by --ca)")
        parser.add_argument("--ca", type=Path, help="CA certificate to trust for TLS")
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
    from brainwave.registry import cli as registry_cli

    registry_cli.add_register_parser(sub)
    registry_cli.add_models_subcommands(models_sub)


# --- commands ------------------------------------------------------------------------------------
def cmd_package(args) -> int:
    from brainwave.pipeline import check_featurizers
    from brainwave.pipeline.definition import BrainwaveStage, parse_service_json

    try:
        raw = args.service_def.read_bytes()
    except OSError as exc:
        raise BrainwaveError(f"cannot read {args.service_def}: {exc.strerror}") from None
    definition = parse_service_json(raw)
    check_featurizers(definition)
    base = args.service_def.parent
    for stage in definition.pipeline:
        if getattr(stage, "model_path", None):  # tensorflow, onnx, and brainwave stages with their own file
            stage.source = base / stage.model_path
        if isinstance(stage, BrainwaveStage) and stage.weights_path:
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
    if args.model_zip is not None:
        return _serve(args)
    policy, labels = VersionPolicy.parse(args.versions), _labels(args.label)
    if args.base_path.startswith(REGISTRY_SCHEME):
        name = args.base_path[len(REGISTRY_SCHEME):]
        registry = _registry(args)
        plan = ModelPlan(args.name or name, _registry_source(registry, name), policy, labels)
        return _serve(args, plan, registry)
    base = Path(args.base_path)
    plan = ModelPlan(args.name or base.resolve().name, DirectorySource(base), policy, labels)
    return _serve(args, plan, roots=(base,))


def cmd_deploy(args) -> int:
    from brainwave.registry.cli import parse_target
    from brainwave.serving.versions import ModelPlan, VersionPolicy

    name, version, tag = parse_target(args.target)
    registry = _registry(args)
    record = registry.get(name, version, tag)
    console.print(f"deploying {name} version {record.version} from {registry.store.describe()}", soft_wrap=True)
    args.model_zip = None
    plan = ModelPlan(args.name or name, _registry_source(registry, name),
                     VersionPolicy("specific", specific=(record.version,)))
    return _serve(args, plan, registry)


REGISTRY_SCHEME = "registry:"


def _registry(args):
    from brainwave.registry.cli import registry_from

    return registry_from(args)


def _registry_source(registry, name: str):
    from brainwave.serving.registry_source import RegistrySource

    return RegistrySource(registry, name)


def _serve(args, plan=None, registry=None, roots: tuple[Path, ...] = ()) -> int:
    """Serve args.model_zip, or the versions a plan names, until SIGINT/SIGTERM. The port and the TLS files are
    checked before any model loads, so a taken port costs a second, not a model load."""
    from brainwave.serving.limits import RequestLimits
    from brainwave.serving.servables import ServableManager
    from brainwave.serving.server import ModelServer, ServerConfig

    _size_tensorflow(args)
    keys = _key_file(args.keys_file) if args.keys_file else None
    config = ServerConfig(
        host=args.host, port=args.port, max_message_bytes=args.max_message_mb << 20, workers=args.workers,
        max_concurrent_rpcs=args.max_concurrent_rpcs, max_inflight_pixels=args.max_inflight_pixels,
        limits=RequestLimits(args.max_items, args.max_request_pixels), metrics_port=args.metrics_port,
        metrics_host=args.metrics_host, rest_port=args.rest_port, keys=keys,
        admin_without_keys=args.admin_without_keys, model_roots=(*args.model_root, *roots), tls_cert=args.tls_cert,
        tls_key=args.tls_key, tls_client_ca=args.tls_client_ca, load_policy=args.load_policy)
    manager = ServableManager()
    loader = _pipeline_loader(args)
    server = ModelServer(manager, config, loader=loader, registry=registry)
    server.bind()
    if keys is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s without API keys: anyone who can reach port %d can score (the admin API is off); "
                    "use --keys-file to require keys", args.host, server.port)
    if args.model_zip is not None:
        name = args.name or default_model_name(args.model_zip)
        with console.status(f"Loading {args.model_zip} on the {args.backend} backend..."):
            manager.load(name, args.version, lambda: loader(args.model_zip))
        _print_stages(name, args.version, manager.resolve(name).pipeline)
    if plan is not None:
        with console.status(f"Loading {plan.name} from {plan.source!r} on the {args.backend} backend..."):
            server.controller.apply([plan])
    port = server.start()
    served = ", ".join(f"{n} v{','.join(str(s.version) for s in manager.versions(n))}" for n in manager.model_names())
    extra = "".join(f", {what} on port {http.port}" for what, http in (("REST", server.rest),
                                                                        ("metrics", server.metrics_server)) if http)
    console.print(f"[green]Serving[/] {served} on {args.host}:{port} (gRPC Predict, model status, admin, health, "
                  f"reflection{extra}). Ctrl-C to stop.", soft_wrap=True)
    server.serve_until_signal(args.grace, drain_delay=args.drain_delay,
                              on_signal=lambda name: console.print(f"received {name}, finishing in-flight requests..."))
    manager.close()
    console.print("stopped")
    return 0


def _thread_plan(args) -> tuple[int, int | None]:
    """(TensorFlow pool threads, NPU executor threads), sized together so they never ask for more than the cores.
    With an NPU backend TensorFlow runs the light pre- and post-processing on one thread and the executor gets
    the other cores: the featurizer, the slowest stage, then never waits for a core, and the stages of
    different requests overlap (preprocessing of the next request runs beside the featurizer of this one)."""
    cores = os.cpu_count() or 1
    if args.backend == "float":
        return args.tf_threads or cores, None
    tf_threads = args.tf_threads or 1
    return tf_threads, args.npu_threads or max(1, cores - tf_threads)


def _size_tensorflow(args) -> None:
    from brainwave.tf_runtime import configure_threads

    threads, _ = _thread_plan(args)
    configure_threads(threads, threads)


def _pipeline_loader(args):
    from brainwave.pipeline import Pipeline

    options = {key: value for key, value in (("precision", args.precision), ("board", args.board),
                                             ("simulate", args.simulate), ("threads", _thread_plan(args)[1]))
               if value is not None}

    def load(path: Path) -> Pipeline:
        return Pipeline.load(path, backend=args.backend, backend_options=options, max_image_pixels=args.max_image_pixels,
                             warm_up=args.warmup, allow_any_op=args.allow_any_op)
    return load


def _key_file(path: Path):
    from brainwave.serving.auth import KeyFile

    try:
        return KeyFile(path)
    except ValueError as exc:
        raise BrainwaveError(str(exc)) from None


def _labels(pairs: list[str]) -> dict[str, int]:
    labels = {}
    for pair in pairs:
        label, _, version = pair.partition("=")
        if not label or not version.isdigit():
            raise BrainwaveError(f"--label wants LABEL=VERSION, got {pair!r}")
        labels[label] = int(version)
    return labels


def _tls(args) -> tuple[bool, bytes | None]:
    """(use TLS, the CA to trust): --ca implies TLS."""
    if args.ca is None:
        return args.ssl, None
    try:
        return True, args.ca.read_bytes()
    except OSError as exc:
        raise BrainwaveError(f"cannot read --ca {args.ca}: {exc.strerror}") from None


def _admin(args):
    from brainwave.admin_client import ModelAdminClient

    use_ssl, ca = _tls(args)
    return ModelAdminClient(args.address, use_ssl=use_ssl, access_token=args.key, root_certificates=ca)


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
    for flag, value in (("--share", args.share), ("--mirror", args.mirror)):
        if not 0.0 <= value <= 1.0:
            raise BrainwaveError(f"{flag} is a fraction between 0 and 1, got {value:g}")
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


def _print_stages(name: str, version: int, pipeline) -> None:
    table = Table(title=f"{name} v{version}")
    table.add_column("#")
    table.add_column("stage")
    for index, label in enumerate(pipeline.stage_labels):
        table.add_row(str(index), label)
    console.print(table)


def cmd_score(args) -> int:
    import numpy as np

    from brainwave.client import PredictionClient

    labels = _read_text(args.labels, "--labels").splitlines() if args.labels else None
    use_ssl, ca = _tls(args)
    for image in args.images:
        if not image.is_file():
            raise BrainwaveError(f"image {image} does not exist")
    results = []
    with PredictionClient(args.address, use_ssl=use_ssl, access_token=args.key, model_name=args.model,
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


def cmd_health(args) -> int:
    from brainwave.client import check_health

    use_ssl, ca = _tls(args)
    status = check_health(args.address, args.service, args.timeout, use_ssl=use_ssl, root_certificates=ca)
    out.print(status)
    return 0 if status == "SERVING" else 1


def _read_text(path: Path, flag: str) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise BrainwaveError(f"cannot read {flag} {path}: {exc}") from None


def cmd_models(args) -> int:
    from brainwave.models import catalog_entries

    if getattr(args, "estimate", None):
        from brainwave.fpga.perf import run_estimate

        return run_estimate(args, out)

    from brainwave.models.figures import ESTIMATE_BOARD, ESTIMATE_PRECISION, load

    figures = load()
    table = Table(title="Featurizer catalog (type: brainwave stages)")
    for column in ("model_ref", "versions", "input", "output", "GMAC", "weights MB bfp20/16/12",
                   f"{ESTIMATE_BOARD} {ESTIMATE_PRECISION} ms (estimate)", "weights", "description"):
        table.add_column(column)
    for spec in catalog_entries():
        output = f"{len(spec.outputs)} outputs" if spec.outputs else str(list(spec.output_dims))
        f = figures.get(spec.model_ref)
        numbers = ["?"] * 3 if f is None else [
            f"{f['gmac']:.2f}", " / ".join(f"{f['weights_mb'][p]:.1f}" for p in ("bfp20", "bfp16", "bfp12")),
            f"{f[f'{ESTIMATE_BOARD}_{ESTIMATE_PRECISION}_ms']:.1f}"]
        table.add_row(spec.model_ref, ", ".join(spec.versions), "x".join(map(str, spec.input_shape)), output,
                      *numbers, spec.weights_note, spec.description)
    out.print(table)
    out.print("GMAC, weights and the estimate: brainwave/models/figures.json (python -m brainwave.models.figures "
              f"--write); per layer and board: brainwave models --estimate {ESTIMATE_BOARD}")
    return 0


def cmd_compile(args) -> int:
    from brainwave.npu.ops import program_macs

    try:
        with console.status(f"compiling {args.model_ref} for the NPU ({args.precision})..."):
            program, note = _compile_featurizer(args)
    except (LookupError, ValueError) as exc:  # unknown model, unknown precision, unsupported layer
        raise BrainwaveError(str(exc)) from exc
    path = program.save(args.out)
    out.print(f"wrote {path}: {len(program.instructions)} instructions, {program_macs(program) / 1e9:.2f} GMAC, "
              f"weights {len(program.weights) / 1e6:.1f} MB, arena {program.arena_words * 4 / 1e6:.1f} MB; "
              f"list it with `python -m brainwave.npu.isa --dump {path}`")
    if note:
        out.print(note)
    return 0


def _compile_featurizer(args):
    """(program, a note on its input/output layout or None) for a catalog name or an .onnx/.keras file."""
    from brainwave.npu.compiler import compile_keras, compile_onnx

    source = Path(args.model_ref)
    if source.suffix == ".onnx":
        if args.weights:
            raise BrainwaveError("--weights goes with a catalog featurizer; an ONNX file carries its own")
        from brainwave.pipeline.onnx_model import load_onnx_model

        compiled = compile_onnx(load_onnx_model(source, str(source)), precision=args.precision)
        layouts = f"the model's input {compiled.input.shape} is the program's {compiled.program.input_shape}"
        if compiled.input.perm != (0, 1, 2, 3):
            layouts += " (transpose N x C x H x W to H x W x C first)"
        return compiled.program, f"{layouts}; its output {compiled.output.shape} is the program's " \
                                 f"{compiled.program.output_shape}"
    if source.suffix == ".keras":
        from brainwave.tf_runtime import keras

        return compile_keras(keras.saving.load_model(source, compile=False, safe_mode=True), args.precision), None
    from brainwave.models import build_featurizer, resolve_featurizer

    return compile_keras(build_featurizer(resolve_featurizer(args.model_ref), args.weights), args.precision), None


if __name__ == "__main__":
    sys.exit(main())
