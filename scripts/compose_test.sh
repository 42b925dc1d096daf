#!/usr/bin/env bash
# make compose-test: build every image and run the real compose.yaml end to end on this machine.
#
#  1. a Docker engine: the one that answers, else Debian's docker.io started privately as root
#     (--bridge=none --iptables=false, its own socket, data and exec roots under $DS_DOCKER_ROOT),
#     stopped again at the end;
#  2. Compose v2: `docker compose` if present, else `go install github.com/docker/compose/v2/cmd@$COMPOSE_VERSION`
#     into $DS_CACHE (built once, reused);
#  3. the base images the Dockerfiles and compose.yaml name, pulled; where the registry cannot be
#     reached, stand-ins of the same name:tag built from Debian's packages (docker/standins/); then
#     our two images from the project's unchanged Dockerfiles, with the classic builder;
#  4.-6. tests/deploy/compose_run.py, for the plaintext deployment and then the secured one
#     (compose.secure.yaml, Kafka on SASL_SSL only): `docker compose up --wait` with compose.hostnet.yaml
#     (host network, 127.0.0.1, free ports), a 20,000-event run through the gateway, the Spark
#     container SIGKILLed mid-run, `devicestream verify` on the stack's topic and data volume,
#     `down -v`; the secured one also shows the broker refusing a client without credentials and
#     one with a wrong password; the plaintext one freezes the Spark container until Prometheus
#     fires the SparkLagGrowing alert (its own API), then verifies again.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
COMPOSE_VERSION=${COMPOSE_VERSION:-v2.32.4}
DS_CACHE=${DS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/devicestream}
DS_DOCKER_ROOT=${DS_DOCKER_ROOT:-/var/tmp/devicestream-docker}
PULL_TIMEOUT_S=${PULL_TIMEOUT_S:-60}
log() { echo "compose-test: $*"; }
elapsed() { echo "$(($(date +%s) - t0))s"; }

dockerd_pid=""
stop_engine() {
  local rc=$?
  if [[ -n "$dockerd_pid" ]] && kill -0 "$dockerd_pid" 2>/dev/null; then
    log "stopping the private dockerd (pid $dockerd_pid)"
    kill -TERM "$dockerd_pid"
    for _ in $(seq 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$dockerd_pid" 2>/dev/null && kill -KILL "$dockerd_pid"
    # dockerd leaves its default network namespace mounted under the exec root
    umount "$DS_DOCKER_ROOT/exec/netns/default" 2>/dev/null || true
  fi
  log "$([[ $rc == 0 ]] && echo passed || echo "FAILED (exit $rc)") in $(elapsed)"
  exit "$rc"
}
trap stop_engine EXIT

# ---- 1. engine ----------------------------------------------------------------------------------
if docker info >/dev/null 2>&1; then
  log "using the Docker engine that answers: $(docker version -f '{{.Server.Version}}')"
else
  [[ $(id -u) == 0 ]] || { log "no Docker engine answers and starting one needs root"; exit 2; }
  if ! command -v dockerd >/dev/null; then
    log "installing Debian's docker.io"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io >/dev/null
  fi
  command -v docker >/dev/null || { log "no docker client after installing docker.io"; exit 2; }
  mkdir -p "$DS_DOCKER_ROOT"
  export DOCKER_HOST="unix://$DS_DOCKER_ROOT/docker.sock"
  if docker info >/dev/null 2>&1; then
    log "using the private dockerd already running at $DOCKER_HOST"
  else
    log "starting a private dockerd at $DOCKER_HOST (log: $DS_DOCKER_ROOT/dockerd.log)"
    dockerd --bridge=none --iptables=false --ip-masq=false \
      --data-root "$DS_DOCKER_ROOT/data" --exec-root "$DS_DOCKER_ROOT/exec" \
      --pidfile "$DS_DOCKER_ROOT/dockerd.pid" -H "$DOCKER_HOST" >>"$DS_DOCKER_ROOT/dockerd.log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; kill -0 "$dockerd_pid" || break; sleep 0.5; done
    docker info >/dev/null 2>&1 || { log "dockerd did not answer within 60 s:"; tail -n 30 "$DS_DOCKER_ROOT/dockerd.log"; exit 2; }
  fi
fi

# ---- 2. Compose v2 --------------------------------------------------------------------------------
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  bin="$DS_CACHE/compose-$COMPOSE_VERSION/docker-compose"
  if [[ ! -x "$bin" ]]; then
    command -v go >/dev/null || { log "no docker compose and no Go to build it with"; exit 2; }
    log "building Docker Compose $COMPOSE_VERSION with Go (once; cached in $(dirname "$bin"))"
    mkdir -p "$(dirname "$bin")"
    GOBIN="$(dirname "$bin")" go install -ldflags "-X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
      "github.com/docker/compose/v2/cmd@$COMPOSE_VERSION"
    mv "$(dirname "$bin")/cmd" "$bin"
  fi
  compose=("$bin")  # the plugin binary also runs standalone, as docker-compose
fi
log "$("${compose[@]}" version) on engine $(docker version -f '{{.Server.Version}}') ($(elapsed))"

# ---- 3. images --------------------------------------------------------------------------------------
export DOCKER_BUILDKIT=0  # the classic builder: BuildKit would pull its frontend from Docker Hub
build_log=/var/tmp/devicestream-compose-test-build.log
build() {  # docker build, quiet unless it fails (then the tail of its output)
  if ! docker build --network host "$@" >"$build_log" 2>&1; then
    log "docker build $* failed:"; tail -n 60 "$build_log"; exit 1
  fi
}
standin_base=devicestream-standin/debian:bookworm
standin_context=""
ensure_standin_context() {
  [[ -n "$standin_context" ]] && return
  standin_context=$(mktemp -d /var/tmp/devicestream-standin.XXXXXX)
  mkdir -p "$standin_context/certs" "$standin_context/libs"
  cp /usr/local/share/ca-certificates/*.crt "$standin_context/certs/" 2>/dev/null || true
  cp -r docker/standins/kafka "$standin_context/kafka"
  if ! docker image inspect "$standin_base" >/dev/null 2>&1; then
    command -v mmdebstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y mmdebstrap >/dev/null
    log "making $standin_base from Debian's packages (mmdebstrap, minbase)"
    mmdebstrap --quiet --variant=minbase --include=ca-certificates,passwd bookworm "$standin_context/rootfs.tar"
    docker import "$standin_context/rootfs.tar" "$standin_base" >/dev/null
    rm -f "$standin_context/rootfs.tar"
  fi
}
build_standin() {  # <image:tag> <docker/standins/x.Dockerfile>
  ensure_standin_context
  if [[ "$2" == *kafka* ]]; then
    [[ -f .jars/kafka/.installed ]] || { log ".jars/kafka missing: run make install"; exit 2; }
    rm -rf "$standin_context/libs" && mkdir -p "$standin_context/libs" && cp .jars/kafka/*.jar "$standin_context/libs/"
  fi
  log "building stand-in $1 from Debian's packages ($2)"
  build -f "$2" -t "$1" "$standin_context"
}
ensure_base() {  # <image:tag> <stand-in Dockerfile>
  docker image inspect "$1" >/dev/null 2>&1 && return
  if timeout "$PULL_TIMEOUT_S" docker pull -q "$1" >/dev/null 2>&1; then log "pulled $1"; return; fi
  build_standin "$1" "$2"
}
for image in $(awk 'toupper($1) == "FROM" {print $2}' docker/*.Dockerfile; awk '$1 == "image:" {print $2}' compose.yaml); do
  case "$image" in
    devicestream-*) ;;
    python:*) ensure_base "$image" docker/standins/python.Dockerfile ;;
    maven:*) ensure_base "$image" docker/standins/maven.Dockerfile ;;
    apache/kafka:*) ensure_base "$image" docker/standins/kafka.Dockerfile ;;
    prom/prometheus:*) ensure_base "$image" docker/standins/prometheus.Dockerfile ;;
    *) docker image inspect "$image" >/dev/null 2>&1 || docker pull "$image" ;;
  esac
done
[[ -n "$standin_context" ]] && rm -rf "$standin_context"
log "base images ready ($(elapsed))"
image_of() { awk -v s="devicestream-$1:" '$1 == "image:" && index($2, s) == 1 {print $2; exit}' compose.yaml; }
for svc in services spark; do
  image=$(image_of "$svc")
  log "building $image from docker/$svc.Dockerfile"
  build -f "docker/$svc.Dockerfile" -t "$image" .
done
# The services image carries no pyspark (over 300 MB it would not use) and imports its three services.
docker run --rm --network none "$(image_of services)" python -c '
import importlib, importlib.util, sys
for m in ("services.generator.app", "services.merger.app", "services.gateway.app"):
    importlib.import_module(m)
sys.exit("pyspark is in the services image" if importlib.util.find_spec("pyspark") else 0)'
mb() { echo $(( $(docker image inspect -f '{{.Size}}' "$1") / 1000000 )); }
log "images ($(elapsed)); sizes in MB (10^6 bytes), as \`docker image ls\` counts them:"
for svc in services spark; do
  image=$(image_of "$svc")
  base=$(awk 'toupper($1) == "FROM" {b = $2} END {print b}' "docker/$svc.Dockerfile")
  printf '  %-34s %5s MB  (%s MB of it: the base %s)\n' "$image" "$(mb "$image")" "$(mb "$base")" "$base"
done
for image in $(awk '$1 == "image:" && $2 !~ /^devicestream-/ {print $2}' compose.yaml | sort -u); do
  printf '  %-34s %5s MB\n' "$image" "$(mb "$image")"
done

# ---- 4.-6. the stacks: plaintext, then secured (compose.secure.yaml) -------------------------------
COMPOSE_BIN="${compose[*]}" .venv/bin/python -m tests.deploy.compose_run
log "the plaintext deployment passed ($(elapsed))"
COMPOSE_BIN="${compose[*]}" .venv/bin/python -m tests.deploy.compose_run --secure
log "the secured deployment passed ($(elapsed))"
