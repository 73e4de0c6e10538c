"""The wire protocol shared by the client, the server and model warm-up: TF Serving's API messages compiled
into a private descriptor pool (`api`), and TensorProto <-> numpy (`tensors`). Imports neither TensorFlow nor
the server."""
