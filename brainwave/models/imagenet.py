"""ImageNet-1k class names (index -> human-readable name) for classifier outputs.

The names come from two text files in the `timm` wheel (1.0.31): `timm/data/_info/imagenet_synsets.txt`
(line i = WordNet synset of class i) and `imagenet_synset_to_lemma.txt` (synset<TAB>lemmas). They are
fetched once at setup time, never at run time, and timm is never imported:

    python -m brainwave.models.imagenet --fetch            # into the default data directory
    python -m brainwave.models.imagenet --fetch DEST       # or into DEST
    python -m brainwave.models.imagenet --fetch --wheel timm-1.0.31-py3-none-any.whl   # offline
    python -m brainwave.models.imagenet --labels labels.txt  # one name per line, for `--labels FILE`

The default data directory is `<sys.prefix>/share/brainwave/imagenet` (inside the virtualenv, so it goes
with the environment that uses it); `BRAINWAVE_DATA_DIR` overrides it (files then live in
`$BRAINWAVE_DATA_DIR/imagenet`).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from brainwave.errors import BrainwaveError

TIMM_VERSION = "1.0.31"
SYNSETS_MEMBER = "timm/data/_info/imagenet_synsets.txt"
LEMMAS_MEMBER = "timm/data/_info/imagenet_synset_to_lemma.txt"
SYNSETS_FILE = "imagenet_synsets.txt"
LEMMAS_FILE = "imagenet_synset_to_lemma.txt"
NUM_CLASSES = 1000


class LabelsNotFetchedError(BrainwaveError, FileNotFoundError):
    pass


def default_data_dir() -> Path:
    env = os.environ.get("BRAINWAVE_DATA_DIR")
    base = Path(env) if env else Path(sys.prefix) / "share" / "brainwave"
    return base / "imagenet"


def fetch_command(dest: Path | None = None) -> str:
    target = f" {dest}" if dest is not None else ""
    return f"{Path(sys.executable).name} -m brainwave.models.imagenet --fetch{target}"


def extract_from_wheel(wheel: Path, dest: Path) -> list[Path]:
    """Copy the two class-name files out of a timm wheel into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    with zipfile.ZipFile(wheel) as archive:
        for member, name in ((SYNSETS_MEMBER, SYNSETS_FILE), (LEMMAS_MEMBER, LEMMAS_FILE)):
            try:
                data = archive.read(member)
            except KeyError:
                raise ValueError(f"{wheel} has no {member}; is it a timm wheel?") from None
            target = dest / name
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
            written.append(target)
    _read_labels(dest)  # validate what was written
    return written


def fetch(dest: Path | None = None, wheel: Path | None = None) -> list[Path]:
    """Download the timm wheel (no dependencies, not installed) with pip and extract the two files."""
    dest = Path(dest) if dest is not None else default_data_dir()
    if wheel is not None:
        return extract_from_wheel(Path(wheel), dest)
    with tempfile.TemporaryDirectory(prefix="brainwave-timm-") as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", f"timm=={TIMM_VERSION}", "--no-deps",
             "--only-binary=:all:", "-d", tmp, "-q"],
            check=True,
        )
        wheels = sorted(Path(tmp).glob("timm-*.whl"))
        if not wheels:
            raise RuntimeError(f"pip download timm=={TIMM_VERSION} produced no wheel")
        return extract_from_wheel(wheels[0], dest)


def _read_labels(data_dir: Path, full: bool = False) -> list[str]:
    synsets_path, lemmas_path = data_dir / SYNSETS_FILE, data_dir / LEMMAS_FILE
    if not (synsets_path.is_file() and lemmas_path.is_file()):
        raise LabelsNotFetchedError(
            f"ImageNet class names are not in {data_dir}; fetch them once with: {fetch_command()}"
            + ("" if data_dir == default_data_dir() else f" {data_dir}")
        )
    synsets = [line.strip() for line in synsets_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(synsets) != NUM_CLASSES:
        raise ValueError(f"{synsets_path}: {len(synsets)} synsets, expected {NUM_CLASSES}")
    lemmas = {}
    for line in lemmas_path.read_text(encoding="utf-8").splitlines():
        synset, sep, lemma = line.partition("\t")
        if sep:
            lemmas[synset.strip()] = lemma.strip()
    missing = [s for s in synsets if s not in lemmas]
    if missing:
        raise ValueError(f"{lemmas_path}: no lemma for synset {missing[0]}")
    if full:
        return [lemmas[s] for s in synsets]
    return [lemmas[s].split(",")[0].strip() for s in synsets]


def imagenet_synsets(data_dir: Path | None = None) -> list[str]:
    """WordNet synset id per class index (e.g. 'n01440764' for class 0)."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    _read_labels(data_dir)
    return [line.strip() for line in (data_dir / SYNSETS_FILE).read_text(encoding="utf-8").splitlines()
            if line.strip()]


def imagenet_labels(data_dir: Path | None = None, full: bool = False) -> list[str]:
    """Human-readable name per class index: the first lemma ('tench'), or all lemmas if `full`
    ('tench, Tinca tinca')."""
    return _read_labels(Path(data_dir) if data_dir is not None else default_data_dir(), full=full)


def write_labels_file(path: Path, data_dir: Path | None = None, full: bool = False) -> Path:
    """Write one class name per line (line i = class i), the format of the CLI's `--labels FILE`."""
    labels = imagenet_labels(data_dir, full=full)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(labels) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m brainwave.models.imagenet", description=__doc__.split("\n")[0])
    parser.add_argument("--fetch", nargs="?", const="", metavar="DEST",
                        help=f"fetch the class-name files (default DEST: {default_data_dir()})")
    parser.add_argument("--wheel", type=Path, help="extract from this local timm wheel instead of downloading")
    parser.add_argument("--data-dir", type=Path, help="where the fetched files are (for --labels)")
    parser.add_argument("--labels", type=Path, metavar="FILE", help="write labels.txt (one name per line)")
    parser.add_argument("--full", action="store_true", help="write all lemmas of each class, not just the first")
    args = parser.parse_args(argv)
    if args.fetch is None and args.labels is None:
        parser.error("nothing to do: give --fetch and/or --labels")
    data_dir = args.data_dir
    if args.fetch is not None:
        data_dir = Path(args.fetch) if args.fetch else (data_dir or default_data_dir())
        for path in fetch(data_dir, args.wheel):
            print(f"wrote {path}")
    if args.labels is not None:
        print(f"wrote {write_labels_file(args.labels, data_dir, full=args.full)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
