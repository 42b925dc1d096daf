# syntax=docker/dockerfile:1
# The Python services: generator, merger and gateway (one image, the command picks the component:
# `python -m services.generator` / `python -m services.merger` / `python -m services.gateway`).
#
# pyspark and pyarrow are core dependencies in pyproject.toml (the Spark job and the launcher need them),
# and matplotlib (`devicestream report`'s charts, with numpy), but none of these three imports them: they are
# left out here (over 400 MB; the gateway's GET /report answers 503 without the renderer), and the package itself is installed with
# --no-deps on top of exactly the other pinned dependencies (constraints.txt).

FROM python:3.11.13-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
# Dependencies first: this layer is rebuilt only when the pins change, not when the code does.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
print('\n'.join(d for d in deps if not d.startswith(('pyspark', 'pyarrow', 'matplotlib'))))" > requirements.txt \
 && /opt/venv/bin/pip install -c constraints.txt -r requirements.txt
COPY README.md LICENSE ./
COPY contract contract
COPY kafka_io kafka_io
COPY service_kit service_kit
COPY services services
# devicestream/ for compose.secure.yaml's one-shot `kafka-secrets` (python -m devicestream.compose_secrets)
COPY devicestream devicestream
RUN /opt/venv/bin/pip install --no-deps .

FROM python:3.11.13-slim-bookworm
RUN groupadd --system --gid 10001 devicestream \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/devicestream devicestream \
 && mkdir -p /data && chown 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
# /data is the shared data folder (a named volume in compose.yaml; created here so that a new volume
# starts out owned by the service user).
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 DEVICESTREAM_DATA_DIR=/data
WORKDIR /home/devicestream
USER 10001:10001
EXPOSE 8000 8001 8002
CMD ["python", "-m", "services.gateway"]
