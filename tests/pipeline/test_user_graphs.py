"""Users' own input graphs load and score: warm-up never refuses a valid model, and a model can bring its own
warm-up inputs (a folder of samples, or TF Serving's assets.extra/tf_serving_warmup_requests)."""
from __future__ import annotations

import numpy as np
import pytest

from brainwave.errors import ArchiveError, ModelLoadError
from brainwave.pipeline import Pipeline, ServiceDefinition
from brainwave.tf_runtime import tf
from tests.support import synthetic_png
from tests.support.graphs import bgr_minus_means, blog_fixed_224_graph, seed_zip

def jpeg_only_graph():
    graph = tf.Graph()
    with graph.as_default():
        data = tf.compat.v1.placeholder(tf.string, shape=[], name="in_images")
        image = tf.cast(tf.io.decode_jpeg(data, channels=3), tf.float32)
        bgr_minus_means(tf.compat.v1.image.resize_bilinear(image[tf.newaxis], [224, 224]))
    return graph.as_graph_def()


def batched_map_fn_graph(shape):
    """A batched decoder: a vector of encoded images (or unknown rank), decoded with map_fn."""
    graph = tf.Graph()
    with graph.as_default():
        data = tf.compat.v1.placeholder(tf.string, shape=shape, name="in_images")

        def decode(one):
            image = tf.cast(tf.io.decode_image(one, channels=3, expand_animations=False), tf.float32)
            return tf.compat.v1.image.resize_bilinear(image[tf.newaxis], [224, 224])[0]

        images = tf.map_fn(decode, tf.reshape(data, [-1]), fn_output_signature=tf.float32)
        bgr_minus_means(images)
    return graph.as_graph_def()


@pytest.mark.parametrize("graph, image", [
    (blog_fixed_224_graph, "chelsea"),
    (jpeg_only_graph, "rocket_jpeg"),
    (lambda: batched_map_fn_graph([None]), "chelsea"),
    (lambda: batched_map_fn_graph(None), "rocket_jpeg"),
], ids=["blog-fixed-224", "decode-jpeg-only", "map-fn-vector", "map-fn-unknown-rank"])
def test_users_input_graphs_load_and_score(tmp_path, graph, image, request):
    data = request.getfixturevalue(image)
    pipeline = Pipeline.load(seed_zip(tmp_path, graph()), backend="float")
    try:
        result = pipeline.run(data)
        assert result.output.shape == (1, 1000)
        assert abs(float(result.output.sum()) - 1.0) < 1e-4
        # Metadata comes from the graphs, not from a warm-up result.
        assert pipeline.output_shape.as_list() == [None, 1000]
    finally:
        pipeline.close()


def test_the_model_s_own_warm_up_inputs_are_run_and_must_pass(tmp_path, chelsea):
    ok = Pipeline.load(seed_zip(tmp_path / "ok", blog_fixed_224_graph(), warmup=[chelsea]), backend="float")
    assert len(ok.warmup_inputs) == 1
    ok.close()
    too_small = synthetic_png(64, 48)  # the fixed 224x224 window does not fit: the model's own sample fails
    with pytest.raises(ModelLoadError, match="warm-up input 0 failed: .*stage 0"):
        Pipeline.load(seed_zip(tmp_path / "bad", blog_fixed_224_graph(), warmup=[too_small]), backend="float")
    # Without its own samples the same model loads: only the shape-determined stages are warmed up.
    Pipeline.load(seed_zip(tmp_path / "none", blog_fixed_224_graph()), backend="float").close()


def test_tf_serving_warmup_file_is_read(tmp_path, chelsea):
    from brainwave.protocol.api import api
    from brainwave.protocol.tensors import numpy_to_tensor

    records = tmp_path / "tf_serving_warmup_requests"
    with tf.io.TFRecordWriter(str(records)) as writer:
        for _ in range(2):
            log = api().PredictionLog()
            log.predict_log.request.model_spec.name = "resnet50"
            log.predict_log.request.inputs["images"].CopyFrom(numpy_to_tensor(np.array([chelsea], dtype=object)))
            writer.write(log.SerializeToString())
    build = tmp_path / "build"
    build.mkdir()
    path = seed_zip(build, blog_fixed_224_graph())
    definition = ServiceDefinition.load(path)
    definition.pipeline[0].source = build / "input_trans.pb"
    definition.pipeline[2].source = build / "resnet50_classifier.pb"
    definition.tf_serving_warmup_file = records
    pipeline = Pipeline.load(definition.save(tmp_path / "with-warmup.zip"), backend="float")
    assert len(pipeline.warmup_inputs) == 2 and pipeline.warmup_inputs[0] == chelsea
    pipeline.close()

    records.write_bytes(records.read_bytes()[:-7])  # truncated: a TFRecord CRC/length error
    definition.tf_serving_warmup_file = records
    with pytest.raises(ArchiveError, match="tf_serving_warmup_requests"):
        Pipeline.load(definition.save(tmp_path / "broken-warmup.zip"), backend="float")


def test_no_warmup_loads_without_running_anything(tmp_path):
    bad_sample = synthetic_png(64, 48)
    pipeline = Pipeline.load(seed_zip(tmp_path, blog_fixed_224_graph(), warmup=[bad_sample]), backend="float",
                             warm_up=False)
    pipeline.close()
