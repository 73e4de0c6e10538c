"""`brainwave register`, `brainwave models list|show|delete`, `brainwave deploy`."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from brainwave.errors import BrainwaveError
from brainwave.registry import open_registry

console = Console(stderr=True)
out = Console()


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("registry storage (default: BRAINWAVE_REGISTRY or ~/.brainwave/registry)")
    group.add_argument("--registry", help="local registry directory")
    group.add_argument("--connection-string", help="Azure Storage connection string (or AZURE_STORAGE_CONNECTION_STRING)")
    group.add_argument("--account-url", help="Azure Blob account URL (key from AZURE_STORAGE_ACCOUNT/AZURE_STORAGE_KEY)")
    group.add_argument("--container", default="brainwave-models")


def registry_from(args):
    return open_registry(args.registry, args.connection_string, args.account_url, args.container)


def add_register_parser(sub) -> None:
    register = sub.add_parser("register", help="validate a model.zip and store it in the registry as the next version")
    register.add_argument("model_zip", type=Path)
    register.add_argument("--name", required=True)
    register.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    add_store_arguments(register)
    register.set_defaults(func=cmd_register)



def add_models_subcommands(models_sub) -> None:
    for name, help_text, func in (("list", "registered models", cmd_list), ("show", "versions of a model", cmd_show),
                                  ("delete", "delete a model or one version", cmd_delete)):
        parser = models_sub.add_parser(name, help=help_text)
        if name != "list":
            parser.add_argument("name")
        if name == "delete":
            parser.add_argument("--version", type=int)
        add_store_arguments(parser)
        parser.set_defaults(func=func)


def _tags(pairs: list[str]) -> dict[str, str]:
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not key or not sep:
            raise BrainwaveError(f"--tag wants KEY=VALUE, got {pair!r}")
        tags[key] = value
    return tags


def cmd_register(args) -> int:
    registry = registry_from(args)
    size = args.model_zip.stat().st_size if args.model_zip.is_file() else 0
    with tqdm(total=size, unit="B", unit_scale=True, desc=f"uploading {args.model_zip.name}", disable=None) as bar:
        record = registry.register(args.model_zip, args.name, _tags(args.tag), progress=bar.update)
    console.print(f"registered [bold]{record.name}[/] version {record.version} in {registry.store.describe()} "
                  f"(sha256 {record.sha256[:12]}..., {record.size / 1e6:.1f} MB)", soft_wrap=True)
    print(record.version)
    return 0


def cmd_list(args) -> int:
    registry = registry_from(args)
    table = Table(title=f"Registered models ({registry.store.describe()})")
    for column in ("name", "versions", "latest", "created", "size"):
        table.add_column(column)
    for name in registry.names():
        records = registry.versions(name)
        if records:
            latest = records[-1]
            table.add_row(name, str(len(records)), str(latest.version), latest.created, f"{latest.size / 1e6:.1f} MB")
    out.print(table)
    return 0


def cmd_show(args) -> int:
    registry = registry_from(args)
    records = registry.versions(args.name)
    if not records:
        raise BrainwaveError(f"no model named {args.name!r} in {registry.store.describe()}")
    table = Table(title=f"{args.name}")
    for column in ("version", "created", "size", "sha256", "tags"):
        table.add_column(column)
    for r in records:
        table.add_row(str(r.version), r.created, f"{r.size / 1e6:.1f} MB", r.sha256,
                      ", ".join(f"{k}={v}" for k, v in sorted(r.tags.items())))
    out.print(table)
    return 0


def cmd_delete(args) -> int:
    deleted = registry_from(args).delete(args.name, args.version)
    console.print(f"deleted {args.name} version(s) {', '.join(map(str, deleted))}")
    return 0


def parse_target(target: str) -> tuple[str, int | None, str | None]:
    """NAME, NAME:VERSION or NAME@TAG."""
    match = re.fullmatch(r"([^:@]+)(?::(\d+)|@(.+))?", target)
    if not match:
        raise BrainwaveError(f"deploy target must be NAME, NAME:VERSION or NAME@TAG, got {target!r}")
    name, version, tag = match.groups()
    return name, int(version) if version else None, tag
