# imagevet itself, as a small non-root image: `docker build -t imagevet .`
#   docker run --rm -v "$PWD:/work" -w /work imagevet sync -p imagevet.yaml
# Two stages: the build stage installs the wheel and its dependencies into a virtualenv; the
# final stage is the same slim Python (so the venv's interpreter path holds) with only that venv,
# byte-compiled at build time (a non-root process cannot write __pycache__, and a compiled start
# is faster). Pin the base by digest in your own build for reproducibility.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/imagevet \
 && /opt/imagevet/bin/pip install --no-compile . \
 && /opt/imagevet/bin/pip uninstall -y pip \
 && /opt/imagevet/bin/python -m compileall -q -j 0 /opt/imagevet

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="imagevet" \
      org.opencontainers.image.description="Mirror vetted container images byte for byte, with a lock and an audit trail." \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/imagevet /opt/imagevet
# state (ledger, run summaries, held updates, the run lock) lives on a volume of its own
RUN mkdir -p /var/lib/imagevet && chown 65532:65532 /var/lib/imagevet
ENV PATH=/opt/imagevet/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IMAGEVET_STATE_DIR=/var/lib/imagevet \
    HOME=/tmp
USER 65532:65532
WORKDIR /work
VOLUME ["/var/lib/imagevet"]
# imagevet watch serves /metrics, /healthz and /readyz here (--listen 0.0.0.0:9108)
EXPOSE 9108
ENTRYPOINT ["imagevet"]
CMD ["--help"]
