#!/usr/bin/env bash
# Installs everything devicestream needs into the work tree, idempotently:
#   .venv/        Python 3.11 virtualenv with the pinned packages (pyproject.toml + constraints.txt)
#   .jars/kafka/  the embedded broker's classpath     (runtime/maven/kafka/pom.xml)
#   .jars/spark/  Spark's Kafka connector and its deps (runtime/maven/spark/pom.xml), and the job's
#                 local file system without child processes (runtime/maven/localfs: built here)
# A second run only compares stamps and returns in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
need() { command -v "$1" >/dev/null 2>&1 || { echo "install: '$1' is required ($2)" >&2; exit 1; }; }
need "$PYTHON" "Python 3.11"
need java "Java 17 (apt-get install openjdk-17-jdk-headless)"
need mvn "Maven (apt-get install maven)"
"$PYTHON" - <<'PY' || { echo "install: Python >= 3.11 is required" >&2; exit 1; }
import sys; sys.exit(sys.version_info < (3, 11))
PY

# stale STAMP INPUT...: true when STAMP is missing or older than any INPUT
stale() { local stamp=$1; shift; [ -f "$stamp" ] || return 0; for f in "$@"; do [ "$f" -nt "$stamp" ] && return 0; done; return 1; }

if [ ! -x .venv/bin/python ]; then
  echo "install: creating .venv"
  "$PYTHON" -m venv .venv
fi
if stale .venv/.installed pyproject.toml constraints.txt; then
  echo "install: Python packages (first time takes a few minutes: pyspark is large)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -c constraints.txt -e '.[dev]'
  touch .venv/.installed
fi

mvn_copy() { # name, extra flags
  local name=$1; shift
  local out=.jars/$name pom=runtime/maven/$name/pom.xml
  if stale "$out/.installed" "$pom"; then
    echo "install: resolving $name jars from Maven Central"
    rm -rf "$out"; mkdir -p "$out"
    mvn -q -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$PWD/$out" "$@"
    touch "$out/.installed"
  fi
}
mvn_copy kafka -DincludeScope=runtime
mvn_copy spark -DexcludeTransitive=true
localfs=.jars/spark/devicestream-localfs.jar
if stale "$localfs" runtime/maven/localfs/pom.xml runtime/maven/localfs/src/main/java/devicestream/fs/*.java; then
  echo "install: building the job's local file system (runtime/maven/localfs)"
  mvn -q -B -f runtime/maven/localfs/pom.xml package
  cp runtime/maven/localfs/target/devicestream-localfs.jar "$localfs"
fi

# Headless Chromium (Debian's package): prints `devicestream report`'s PDF, and playwright drives it in
# the dashboard and report tests; poppler-utils (pdftoppm, pdfinfo) renders the PDF in the report test.
_apt_need() {  # _apt_need <command> <package> <what for>
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install: $2 ($3)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  else
    echo "install: $1 is missing and this is not root with apt-get:" \
         "run 'sudo apt-get install -y $2' ($3; the tests that need it are skipped)" >&2
  fi
}
_apt_need /usr/bin/chromium chromium "the report's PDF, the dashboard and report tests"
_apt_need pdftoppm poppler-utils "the report test renders the PDF"

# promtool (Debian's prometheus package) for tests/deploy/test_prometheus_rules.py: `promtool check
# rules` and `promtool test rules` on deploy/prometheus/alerts.yml.
if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install: prometheus (promtool, for the alert rules' tests)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "install: promtool is missing and this is not root with apt-get:" \
         "run 'sudo apt-get install -y prometheus' or the alert rules' tests will be skipped" >&2
  fi
fi

# compose-go's validator (the loader `docker compose` is built on) for tests/deploy/test_compose.py:
# `.venv/bin/compose-spec compose.yaml` interpolates, validates and checks compose.yaml like
# `docker compose config`, with no Docker engine. Built from the Go module proxy when Go is there;
# without it those tests use the vendored Compose Specification schema alone.
COMPOSE_GO=v2.16.2
if command -v go >/dev/null 2>&1 && [ "$(cat .venv/.compose-spec 2>/dev/null)" != "$COMPOSE_GO" ]; then
  echo "install: building compose-go $COMPOSE_GO's compose file validator"
  gobin=$(mktemp -d)
  if GOBIN="$gobin" GOFLAGS=-mod=mod go install "github.com/compose-spec/compose-go/v2/cmd@$COMPOSE_GO"; then
    mv "$gobin/cmd" .venv/bin/compose-spec && echo "$COMPOSE_GO" > .venv/.compose-spec
  else
    echo "install: could not build compose-go's validator; compose.yaml is checked against the schema alone" >&2
  fi
  rm -rf "$gobin"
fi
