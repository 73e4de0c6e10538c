"""ImageNet class names extracted from the timm wheel's data files."""
from __future__ import annotations

import zipfile

import pytest

from brainwave.models import imagenet


def _fake_timm_wheel(path, synsets, lemmas):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(imagenet.SYNSETS_MEMBER, "\n".join(synsets) + "\n")
        archive.writestr(imagenet.LEMMAS_MEMBER, "\n".join(f"{s}\t{l}" for s, l in lemmas.items()) + "\n")
        archive.writestr("timm/__init__.py", "raise RuntimeError('never imported')\n")
    return path


def test_extract_and_read_from_a_wheel(tmp_path):
    synsets = [f"n{i:08d}" for i in range(1000)]
    lemmas = {s: f"thing {i}, other name {i}" for i, s in enumerate(synsets)}
    lemmas["n99999999"] = "not an ImageNet-1k class"
    wheel = _fake_timm_wheel(tmp_path / "timm-1.0.31-py3-none-any.whl", list(reversed(synsets)), lemmas)
    data = tmp_path / "data"
    written = imagenet.extract_from_wheel(wheel, data)
    assert sorted(p.name for p in written) == sorted([imagenet.SYNSETS_FILE, imagenet.LEMMAS_FILE])
    labels = imagenet.imagenet_labels(data)
    assert len(labels) == 1000
    assert labels[0] == "thing 999" and labels[999] == "thing 0"  # order follows the synset file
    assert imagenet.imagenet_labels(data, full=True)[0] == "thing 999, other name 999"
    out = imagenet.write_labels_file(tmp_path / "labels.txt", data)
    assert out.read_text().splitlines() == labels


def test_incomplete_files_are_rejected(tmp_path):
    synsets = [f"n{i:08d}" for i in range(1000)]
    lemmas = {s: "x" for s in synsets[:-1]}
    wheel = _fake_timm_wheel(tmp_path / "timm.whl", synsets, lemmas)
    with pytest.raises(ValueError, match="no lemma"):
        imagenet.extract_from_wheel(wheel, tmp_path / "data")


def test_not_fetched_error_says_how(tmp_path):
    with pytest.raises(imagenet.LabelsNotFetchedError, match="--fetch"):
        imagenet.imagenet_labels(tmp_path / "empty")


def test_real_class_names():
    """Needs `python -m brainwave.models.imagenet --fetch` (setup step)."""
    labels = imagenet.imagenet_labels()
    assert len(labels) == 1000
    assert labels[0] == "tench"
    assert labels[281] == "tabby" and labels[282] == "tiger cat" and labels[285] == "Egyptian cat"
    assert labels[967] == "espresso"
    assert imagenet.imagenet_synsets()[0] == "n01440764"


def test_cli_writes_labels_file(tmp_path):
    out = tmp_path / "labels.txt"
    assert imagenet.main(["--labels", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 1000 and lines[967] == "espresso"
