"""`brainwave image build`: the serving container image from a checkout's Dockerfile, the counterpart of Azure
ML's `Image.create`. The image serves a model.zip mounted into it, a base path, or the registry
(docs/deploy.md); the build is an ordinary `docker build`, which this command runs and times."""
from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from brainwave.errors import BrainwaveError

DEFAULT_TAG = "brainwave:0.1.0"


class ImageError(BrainwaveError):
    """The image could not be built (no docker, no Dockerfile, a failed step)."""


@dataclass
class BuiltImage:
    tag: str
    size_bytes: int
    seconds: float


def default_context() -> Path:
    """The checkout this package runs from, when it is one (an installed wheel has no Dockerfile)."""
    checkout = Path(__file__).resolve().parents[1]
    return checkout if (checkout / "Dockerfile").is_file() else Path.cwd()


def build_command(context: Path, tag: str, *, network: str | None = None, base: str | None = None,
                  ca_certs: tuple[Path, ...] = ()) -> list[str]:
    """The `docker build` line: the legacy builder's output is one line per step, and `--network` lets the
    build steps reach the package registries on an engine without a bridge network."""
    command = ["docker", "build", "--tag", tag, "--file", str(context / "Dockerfile")]
    if network:
        command += ["--network", network]
    if base:
        command += ["--build-arg", f"BASE={base}"]
    if ca_certs:
        pem = "\n".join(Path(path).read_text().strip() for path in ca_certs)
        command += ["--build-arg", f"EXTRA_CA_PEM={pem}"]
    return [*command, str(context)]


def build_image(context: Path, tag: str = DEFAULT_TAG, *, network: str | None = None, base: str | None = None,
                ca_certs: tuple[Path, ...] = (), env: dict[str, str] | None = None) -> BuiltImage:
    """Run the build; its full log goes to a temporary file whose tail is the error when a step fails."""
    if shutil.which("docker") is None:
        raise ImageError("building an image needs the docker command and a Docker engine (apt-get install docker.io)")
    if not (context / "Dockerfile").is_file():
        raise ImageError(f"no Dockerfile in {context}: run from a brainwave checkout or pass --context")
    for path in ca_certs:
        if not Path(path).is_file():
            raise ImageError(f"--ca-cert {path} does not exist")
    command = build_command(context, tag, network=network, base=base, ca_certs=ca_certs)
    start = time.monotonic()
    with tempfile.TemporaryFile(mode="w+") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        if result.returncode != 0:
            log.seek(0)
            tail = "\n".join(log.read().strip().splitlines()[-12:])
            raise ImageError(f"docker build failed (exit {result.returncode}):\n{tail}")
    seconds = time.monotonic() - start
    inspect = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", tag], capture_output=True,
                             text=True, env=env)
    if inspect.returncode != 0:
        raise ImageError(f"docker built {tag} but cannot inspect it: {inspect.stderr.strip()}")
    return BuiltImage(tag, int(inspect.stdout.strip()), seconds)


def add_image_commands(sub) -> None:
    image = sub.add_parser("image", help="container images (like Azure ML's Image.create)")
    actions = image.add_subparsers(metavar="ACTION")
    build = actions.add_parser("build", help="build the serving image from the checkout's Dockerfile (docker build)")
    build.add_argument("--tag", default=DEFAULT_TAG, help=f"image name and tag (default {DEFAULT_TAG})")
    build.add_argument("--context", type=Path, default=None, help="the checkout to build (default: this one)")
    build.add_argument("--network", default=None,
                       help="network of the build steps, e.g. host on an engine started with --bridge=none")
    build.add_argument("--base", default=None, help="base image (default: the Dockerfile's debian:bookworm-slim)")
    build.add_argument("--ca-cert", type=Path, action="append", default=[],
                       help="a CA the build must trust to reach the package registries (a TLS-intercepting proxy); "
                            "the build stage only, never the image")
    build.add_argument("--print", action="store_true", help="print the docker build command instead of running it")
    build.set_defaults(func=cmd_image_build)
    image.set_defaults(func=lambda args: image.print_help() or 2)


def cmd_image_build(args: argparse.Namespace) -> int:
    from brainwave.cli import console, out

    context = (args.context or default_context()).resolve()
    if args.print:
        shown = build_command(context, args.tag, network=args.network, base=args.base)
        out.print(" ".join(shown) + ("  (plus --build-arg EXTRA_CA_PEM=...)" if args.ca_cert else ""),
                  soft_wrap=True, markup=False, highlight=False)
        return 0
    with console.status(f"docker build {args.tag} from {context} (a first build takes several minutes)..."):
        built = build_image(context, args.tag, network=args.network, base=args.base, ca_certs=tuple(args.ca_cert))
    out.print(f"built {built.tag}: {built.size_bytes / 1e9:.2f} GB in {built.seconds:.0f} s; run it with "
              f"docker run --network host -v $PWD/model.zip:/models/model.zip:ro {built.tag}",
              soft_wrap=True, markup=False, highlight=False)
    return 0
