"""Our .proto sources are wire-compatible with TF Serving and live beside TensorFlow without clashes."""

from brainwave.protocol.api import api


def official_modules():
    import tensorflow  # noqa: F401 - TensorFlow registers tensorflow.TensorProto in the default pool first
    from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2, inference_pb2,
                                         model_management_pb2, model_service_pb2, predict_pb2, prediction_service_pb2,
                                         regression_pb2)
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2
    from tensorflow.core.protobuf import meta_graph_pb2
    return [tensor_pb2, tensor_shape_pb2, meta_graph_pb2, predict_pb2, get_model_metadata_pb2, get_model_status_pb2, model_management_pb2, classification_pb2,
            regression_pb2, inference_pb2, prediction_service_pb2, model_service_pb2]


def _all_messages(descriptor):
    yield descriptor
    for nested in descriptor.nested_types:
        yield from _all_messages(nested)


def test_every_field_matches_the_official_api_number_and_type():
    official = {}
    for module in official_modules():
        for message in module.DESCRIPTOR.message_types_by_name.values():
            for d in _all_messages(message):
                official[d.full_name] = d
    pool = api().pool
    checked = 0
    for full_name, theirs in official.items():
        try:
            ours = pool.FindMessageTypeByName(full_name)
        except KeyError:
            continue  # streaming / LLM options we do not serve
        for field in ours.fields:
            their_field = theirs.fields_by_name.get(field.name)
            assert their_field is not None, f"{full_name}.{field.name} is not in TF Serving's API"
            assert (field.number, field.type) == (their_field.number, their_field.type), f"{full_name}.{field.name}"
            if field.message_type:
                assert field.message_type.full_name == their_field.message_type.full_name
            checked += 1
    assert checked > 80


def test_services_have_tf_serving_method_paths():
    official = {m.DESCRIPTOR.name: m for m in official_modules()}
    pool = api().pool
    for service_name in ("tensorflow.serving.PredictionService", "tensorflow.serving.ModelService"):
        ours = pool.FindServiceByName(service_name)
        module = next(m for m in official.values() if service_name.rsplit(".", 1)[1] in m.DESCRIPTOR.services_by_name)
        theirs = module.DESCRIPTOR.services_by_name[service_name.rsplit(".", 1)[1]]
        assert [(m.name, m.input_type.full_name, m.output_type.full_name) for m in ours.methods] == \
               [(m.name, m.input_type.full_name, m.output_type.full_name) for m in theirs.methods]


def test_no_duplicate_symbols_with_tensorflow_and_official_client_in_one_process():
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    ours = api().PredictRequest()
    ours.model_spec.name = "m"
    ours.model_spec.version.value = 7
    ours.inputs["images"].dtype = api().DataType["DT_STRING"]
    ours.inputs["images"].string_val.append(b"\x89PNG")
    theirs = predict_pb2.PredictRequest.FromString(ours.SerializeToString())
    assert theirs.model_spec.version.value == 7
    assert tf.make_ndarray(theirs.inputs["images"]).tolist() == b"\x89PNG"  # shapeless: a scalar
    assert api().PredictRequest.FromString(theirs.SerializeToString()) == ours
    assert api().TensorProto is not tf.make_tensor_proto([1.0]).__class__
