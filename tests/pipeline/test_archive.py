"""model.zip is read safely: hostile archives are refused and leave nothing behind."""
import json
import stat
import tempfile
import zipfile
from pathlib import Path

import pytest

from brainwave.errors import ArchiveError, DefinitionError
from brainwave.pipeline import ArchiveLimits, Pipeline, ServiceDefinition, extract_model_zip

SEED = json.loads((Path(__file__).resolve().parents[2] / "pipelines" / "resnet50" / "service_def.json").read_text())


def make_zip(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def seed_members(resnet50_zip: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(resnet50_zip) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.fixture
def no_leftovers(tmp_path, monkeypatch):
    """Extraction happens in a temp directory of this test's own (other processes may extract models into the
    shared one at the same time); whatever is refused must leave nothing there."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    yield
    leftovers = [p.name for p in scratch.iterdir()]
    assert not leftovers, f"a refused archive left {leftovers} behind"


def test_seed_zip_layout_matches_the_user_flow(resnet50_zip):
    with zipfile.ZipFile(resnet50_zip) as archive:
        assert sorted(archive.namelist()) == ["input_trans.pb", "resnet50_classifier.pb", "service_def.json"]
        assert json.loads(archive.read("service_def.json")) == SEED


@pytest.mark.parametrize("case, expected", [
    ("dotdot", "unsafe path"),
    ("absolute", "unsafe path"),
    ("symlink", "link or special file"),
    ("missing_pb", "stage 2: model.zip has no file 'resnet50_classifier.pb'"),
    ("invalid_json", "service_def.json is not valid JSON"),
    ("unknown_stage", "stage 1: unknown type 'gpu'"),
    ("no_service_def", "has no service_def.json at its root"),
    ("not_a_zip", "is not a readable zip archive"),
])
def test_bad_archives_are_refused(tmp_path, resnet50_zip, no_leftovers, case, expected):
    members = seed_members(resnet50_zip)
    links = None
    if case == "dotdot":
        members["../evil.pb"] = b"x"
    elif case == "absolute":
        members["/tmp/evil.pb"] = b"x"
    elif case == "symlink":
        links = {"link.pb": "/etc/passwd"}
    elif case == "missing_pb":
        del members["resnet50_classifier.pb"]
    elif case == "invalid_json":
        members["service_def.json"] = b'{"pipeline": [ oops'
    elif case == "unknown_stage":
        data = json.loads(members["service_def.json"])
        data["pipeline"][1]["type"] = "gpu"
        members["service_def.json"] = json.dumps(data).encode()
    elif case == "no_service_def":
        del members["service_def.json"]
    path = tmp_path / "model.zip"
    if case == "not_a_zip":
        path.write_bytes(b"PK\x03\x04 this is not really a zip")
    else:
        make_zip(path, members, links)
    with pytest.raises((ArchiveError, DefinitionError)) as info:
        Pipeline.load(path, backend="float")
    assert expected in str(info.value)


def test_declared_sizes_are_refused_before_anything_is_written(tmp_path, resnet50_zip, no_leftovers, monkeypatch):
    path = make_zip(tmp_path / "model.zip", seed_members(resnet50_zip))
    written = []
    real_copy = __import__("brainwave.pipeline.archive", fromlist=["_copy_limited"])._copy_limited
    monkeypatch.setattr("brainwave.pipeline.archive._copy_limited", lambda *a: written.append(a) or real_copy(*a))
    with pytest.raises(ArchiveError, match="declares more than 1000 bytes once inflated"):
        extract_model_zip(path, ArchiveLimits(max_total_bytes=1000))
    assert not written, "members were inflated although the central directory already exceeded the limit"


def test_a_header_that_understates_a_size_is_caught_while_inflating(tmp_path, resnet50_zip, no_leftovers):
    """The central directory may lie: a member declared smaller than it is must not pass (size or CRC check)."""
    path = make_zip(tmp_path / "model.zip", seed_members(resnet50_zip))
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("resnet50_classifier.pb")
    patched = 0
    for offset in _central_entries(raw):
        name_len = int.from_bytes(raw[offset + 28:offset + 30], "little")
        if raw[offset + 46:offset + 46 + name_len] == b"resnet50_classifier.pb":
            raw[offset + 24:offset + 28] = (info.file_size // 2).to_bytes(4, "little")  # uncompressed size
            patched += 1
    assert patched == 1
    path.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError, match="corrupt"):
        extract_model_zip(path)


def _central_entries(raw: bytes):
    offset = raw.find(b"PK\x01\x02")
    while offset >= 0:
        yield offset
        offset = raw.find(b"PK\x01\x02", offset + 4)


def test_corrupt_member_is_refused(tmp_path, resnet50_zip, no_leftovers):
    raw = bytearray(resnet50_zip.read_bytes())
    # Flip bytes inside the (large) classifier member's compressed data: its CRC check must fail.
    raw[len(raw) // 2: len(raw) // 2 + 64] = bytes(64)
    path = tmp_path / "model.zip"
    path.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError, match="corrupt"):
        extract_model_zip(path)


def test_extraction_is_private_and_removed(resnet50_zip):
    with extract_model_zip(resnet50_zip) as extracted:
        assert stat.S_IMODE(extracted.root.stat().st_mode) == 0o700
        assert (extracted.root / "input_trans.pb").is_file()
    assert not extracted.root.exists()


def test_save_refuses_missing_sources_and_writes_nothing(tmp_path):
    definition = ServiceDefinition.from_json(SEED)
    target = tmp_path / "out" / "model.zip"
    with pytest.raises(DefinitionError, match="stage 0: no source file"):
        definition.save(target)
    assert not target.exists()
    assert list((tmp_path / "out").iterdir()) == []
