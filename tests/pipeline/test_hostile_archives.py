"""A model.zip may be malicious: every malformed archive, definition or graph ends in the project's own load
error (naming the stage and field where it applies), quickly, without writing outside the extraction
directory or leaving anything behind."""
from __future__ import annotations

import json
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brainwave.errors import ArchiveError, BrainwaveError, DefinitionError, ModelLoadError
from brainwave.pipeline import Pipeline, ServiceDefinition, TensorflowStage, extract_model_zip, read_definition
from brainwave.tf_runtime import tf
from tests.support import small_pipeline_zip

SEED_STAGE = {"type": "tensorflow", "model_path": "g.pb", "input_tensor": "x:0", "output_tensor": "y:0"}


def zip_with(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.fixture(scope="module")
def small_zip(tmp_path_factory) -> Path:
    return small_pipeline_zip(tmp_path_factory.mktemp("small") / "model.zip", seed=3)


def test_deeply_nested_json_is_a_definition_error(tmp_path):
    path = zip_with(tmp_path / "m.zip", {"service_def.json": b"[" * 50_000 + b"]" * 50_000})
    with pytest.raises(DefinitionError, match="nests 50000 levels deep"):
        read_definition(path)


def test_ten_thousand_stages_are_refused_at_once(tmp_path):
    definition = {"pipeline": [SEED_STAGE] * 10_000}
    path = zip_with(tmp_path / "m.zip", {"service_def.json": json.dumps(definition).encode(), "g.pb": b""})
    start = time.perf_counter()
    with pytest.raises(DefinitionError, match="10000 stages, more than the limit"):
        Pipeline.load(path)
    assert time.perf_counter() - start < 30  # refused from the definition, before any graph is built


def _patch_first_entry(raw: bytearray, local_offset: int, central_offset: int, value: bytes) -> None:
    """Write `value` at a field offset of the first member's local header and central directory entry."""
    local, central = raw.find(b"PK\x03\x04"), raw.find(b"PK\x01\x02")
    raw[local + local_offset:local + local_offset + len(value)] = value
    raw[central + central_offset:central + central_offset + len(value)] = value


def test_encrypted_member_is_an_archive_error(small_zip, tmp_path):
    raw = bytearray(small_zip.read_bytes())
    _patch_first_entry(raw, 6, 8, (0x1).to_bytes(2, "little"))  # general purpose flag: encrypted
    path = tmp_path / "m.zip"
    path.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError, match="is encrypted"):
        Pipeline.load(path)


def test_unknown_compression_method_is_an_archive_error(small_zip, tmp_path):
    raw = bytearray(small_zip.read_bytes())
    _patch_first_entry(raw, 8, 10, (99).to_bytes(2, "little"))  # compression method 99 (AES)
    path = tmp_path / "m.zip"
    path.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError, match="compression method 99"):
        Pipeline.load(path)


def test_dot_slash_member_names_are_normalized_and_twins_refused(small_zip, tmp_path):
    with zipfile.ZipFile(small_zip) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["./service_def.json"] = members.pop("service_def.json")
    assert len(read_definition(zip_with(tmp_path / "a.zip", members)).pipeline) == 2
    members["service_def.json"] = members["./service_def.json"]
    with pytest.raises(ArchiveError, match="twice"):
        read_definition(zip_with(tmp_path / "b.zip", members))


def test_a_weights_file_that_is_a_broken_zip_is_a_load_error(tmp_path):
    definition = {"pipeline": [{"type": "brainwave", "model_ref": "resnet50", "weights_path": "w.npz"}]}
    path = zip_with(tmp_path / "m.zip", {"service_def.json": json.dumps(definition).encode(),
                                         "w.npz": b"PK\x03\x04 not really a zip"})
    with pytest.raises(ModelLoadError, match="stage 0"):
        Pipeline.load(path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_zips_only_ever_raise_the_projects_errors(small_zip, tmp_path, monkeypatch, data):
    """Random byte flips, truncations and splices of a valid model.zip: read and extract either succeed or raise
    a BrainwaveError, and never leave an extraction directory behind."""
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    raw = bytearray(small_zip.read_bytes())
    for _ in range(data.draw(st.integers(1, 6))):
        kind = data.draw(st.sampled_from(["flip", "truncate", "splice", "zero"]))
        at = data.draw(st.integers(0, len(raw) - 1))
        if kind == "flip":
            raw[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "truncate":
            del raw[at:]
            if not raw:
                raw = bytearray(b"P")
        elif kind == "splice":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=64))
        else:
            raw[at:at + data.draw(st.integers(1, 32))] = bytes(32)[:1]
    path = tmp_path / "mutated.zip"
    path.write_bytes(bytes(raw))
    try:
        read_definition(path)
        with extract_model_zip(path) as extracted:
            assert extracted.root.is_dir()
    except BrainwaveError:
        pass
    assert not list(scratch.iterdir()), "an extraction directory was left behind"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 7)), min_size=1, max_size=4))
def test_mutated_zips_through_the_whole_loader(small_zip, tmp_path, flips):
    raw = bytearray(small_zip.read_bytes())
    for at, bit in flips:
        raw[at % len(raw)] ^= 1 << bit
    path = tmp_path / "mutated.zip"
    path.write_bytes(bytes(raw))
    try:
        Pipeline.load(path).close()
    except BrainwaveError:
        pass


# --- graphs are data, not code ------------------------------------------------------------------
def _graph_zip(tmp_path: Path, build) -> Path:
    graph = tf.Graph()
    with graph.as_default():
        data = tf.compat.v1.placeholder(tf.string, shape=[], name="in_images")
        tf.identity(build(data), name="out")
    (tmp_path / "g.pb").write_bytes(graph.as_graph_def().SerializeToString())
    return ServiceDefinition([TensorflowStage("g.pb", "in_images:0", "out:0", source=tmp_path / "g.pb")]).save(
        tmp_path / "model.zip")


def _after(side_effect):
    """A graph whose output waits for `side_effect(data)` (ops without outputs join through a control edge)."""
    def build(data):
        with tf.control_dependencies([side_effect(data)]):
            return tf.strings.length(data)
    return build


GRAPHS = {
    "WriteFile": lambda target: _after(lambda data: tf.io.write_file(str(target), data)),
    "ReadFile": lambda target: lambda data: tf.strings.length(tf.io.read_file(data)),
    "MatchingFiles": lambda target: lambda data: tf.size(tf.io.matching_files(data)),
    "SaveV2": lambda target: _after(lambda data: tf.raw_ops.SaveV2(
        prefix=data, tensor_names=["a"], shape_and_slices=[""], tensors=[tf.constant(1.0)])),
}


@pytest.mark.parametrize("op", sorted(GRAPHS))
def test_graphs_with_file_system_ops_are_refused(tmp_path, op):
    target = tmp_path / "escaped.txt"
    path = _graph_zip(tmp_path, GRAPHS[op](target))
    with pytest.raises(ModelLoadError, match=f"stage 0 \\(g.pb\\): op '{op}'.*not allowed.*--allow-any-op"):
        Pipeline.load(path)
    assert not target.exists()


def test_file_ops_inside_a_function_body_are_found(tmp_path):
    """A tf.function graph calls its body through PartitionedCall: the body is checked too."""
    target = tmp_path / "escaped.txt"

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def serve(data):
        tf.io.write_file(str(target), data)
        return tf.strings.length(data)

    frozen = serve.get_concrete_function()
    graph_def = frozen.graph.as_graph_def()
    (tmp_path / "g.pb").write_bytes(graph_def.SerializeToString())
    output = frozen.outputs[0].name
    path = ServiceDefinition([TensorflowStage("g.pb", frozen.inputs[0].name, output, source=tmp_path / "g.pb")]).save(
        tmp_path / "model.zip")
    with pytest.raises(ModelLoadError, match="op 'WriteFile'"):
        Pipeline.load(path)
    assert not target.exists()


def test_trusted_deployments_can_opt_out(tmp_path):
    path = _graph_zip(tmp_path, lambda data: tf.strings.length(tf.io.read_file(data)))
    pipeline = Pipeline.load(path, allow_any_op=True)
    assert pipeline.stage_labels == ("stage 0 (g.pb)",)
    pipeline.close()
