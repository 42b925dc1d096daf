"""The end-to-end half of `make compose-test` (scripts/compose_test.sh builds the images first),
once per deployment: plaintext (compose.yaml) and, with `--secure`, compose.yaml + compose.secure.yaml
(Kafka on SASL_SSL only):

  docker compose -f compose.yaml [-f compose.secure.yaml] -f compose.hostnet.yaml
      [-f compose.secure.hostnet.yaml] up -d --wait                      (free ports on 127.0.0.1)
  secured: a client without credentials, and one with a wrong password, refused by the broker
  POST /generator/start through the gateway: 20,000 events
  the Spark container SIGKILLed mid-run; its restart policy brings it back, healthy again
  the run completes; `devicestream verify` on the stack's topic and its `data` volume: exit 0
  plaintext: the Spark container frozen (docker pause) while the generator runs, until Prometheus's
      own API shows the SparkLagGrowing alert firing; unfrozen, drained, `verify` exit 0 again
  docker compose down -v

Every wait polls with a deadline and prints `docker compose logs` tails when it expires; the stack
is always taken down. Run with `python -m tests.deploy.compose_run [--secure]` (COMPOSE_BIN names the
compose command, default `docker compose`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
from pydantic import SecretStr

from contract.api import GeneratorStatus
from contract.kafka import PLAINTEXT, KafkaSecurity
from devicestream.processes import DeadlineExpired, free_ports, wait_until
from kafka_io.reachability import connection_failure
from tests.documents import generator_status, merger_status
from tests.helpers import REPO_ROOT

T = TypeVar("T")

PROJECT = "devicestream-compose-test"
EVENTS, RATE = 20_000, 400  # a 50 s run: the Spark container is killed while events still arrive
UP_TIMEOUT_S = 600  # first start on a loaded 2-core machine: JVMs, Spark session, four healthchecks
RESTART_TIMEOUT_S = 300
VERIFY_WAIT_S = 300
ALERT_TIMEOUT_S = 300  # SparkLagGrowing: `for: 1m` on a 1-minute slope, 10 s scrapes and evaluations
FREEZE_RATE = 300  # events/s while Spark is frozen: the lag passes the alert's 1,000 within seconds


class ComposeTestError(AssertionError):
    """A step did not happen within its deadline (the message says which, with log tails)."""


def say(msg: str) -> None:
    print(f"compose-test: {msg}", flush=True)


class Stack:
    def __init__(self, compose_bin: list[str], secure: bool = False) -> None:
        kafka, controller, gateway, generator, merger, prometheus = free_ports(6)
        self.secure = secure
        self.env = {
            "DEVICESTREAM_KAFKA_PORT": str(kafka),
            "DEVICESTREAM_KAFKA_CONTROLLER_PORT": str(controller),
            "GATEWAY_PORT": str(gateway),
            "GENERATOR_PORT": str(generator),
            "MERGER_PORT": str(merger),
            "PROMETHEUS_PORT": str(prometheus),
            "KAFKA_TOPIC": "device-events",
            # the gateway must show it to the generator and merger (a direct call without it is refused)
            "DEVICESTREAM_INTERNAL_SECRET": secrets.token_urlsafe(32),
        }
        files = ["compose.yaml", "compose.secure.yaml", "compose.hostnet.yaml", "compose.secure.hostnet.yaml"]
        files = files if secure else files[::2]
        self.project = f"{PROJECT}-secure" if secure else PROJECT
        self.cmd = [*compose_bin, "-p", self.project, *(a for f in files for a in ("-f", f))]
        self.prometheus = f"http://127.0.0.1:{prometheus}"
        self.bootstrap = f"127.0.0.1:{kafka}"
        self.gateway = f"http://127.0.0.1:{gateway}"
        self.merger = f"http://127.0.0.1:{merger}"

    def compose(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.cmd, *args],
            cwd=REPO_ROOT,
            env={**os.environ, **self.env},
            check=check,
            text=True,
            capture_output=True,
            timeout=timeout,
        )

    def docker(self, *args: str) -> str:
        return subprocess.run(["docker", *args], check=True, text=True, capture_output=True, timeout=120).stdout

    def logs(self, *services: str, tail: int = 40) -> str:
        res = self.compose("logs", "--no-color", "--tail", str(tail), *services, check=False, timeout=120)
        return res.stdout + res.stderr

    def wait_for(self, predicate: Callable[[], T], timeout: float, what: str, *services: str) -> T:
        """devicestream.processes.wait_until every second; on timeout, with the tails of `services`' logs."""
        try:
            return wait_until(predicate, timeout, what, interval_s=1.0)
        except DeadlineExpired as e:
            raise ComposeTestError(f"{e}\n{self.logs(*services)}") from None

    # ---- the containers ----------------------------------------------------------------------
    def container(self, service: str) -> dict:
        cid = self.compose("ps", "-q", service).stdout.strip()
        if not cid:
            raise KeyError(f"no container for {service}")
        return json.loads(self.docker("inspect", cid))[0]

    def volume_path(self, name: str) -> str:
        return json.loads(self.docker("volume", "inspect", f"{self.project}_{name}"))[0]["Mountpoint"]

    def merged_rows(self) -> int:
        return merger_status(self.merger).rows_merged

    def generator_status(self) -> GeneratorStatus:
        return generator_status(self.gateway)

    def client_security(self) -> KafkaSecurity:
        """How a client on the host reaches this stack's broker: the settings the containers get from
        compose.secure.yaml, read from the secrets volume (the CA names 127.0.0.1)."""
        if not self.secure:
            return PLAINTEXT
        secrets_dir = Path(self.volume_path("kafka-secrets"))
        return KafkaSecurity(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="devicestream",
            kafka_sasl_password_file=secrets_dir / "client" / "password",
            kafka_ssl_ca_file=secrets_dir / "ca.pem",
        )

    def client_env(self) -> dict[str, str]:
        """The same as environment variables, for `devicestream verify` (the password from its file)."""
        sec = self.client_security()
        if not self.secure:
            return {}
        return {
            "KAFKA_SECURITY_PROTOCOL": sec.kafka_security_protocol,
            "KAFKA_SASL_MECHANISM": sec.kafka_sasl_mechanism,
            "KAFKA_SASL_USERNAME": sec.kafka_sasl_username,
            "KAFKA_SASL_PASSWORD_FILE": str(sec.kafka_sasl_password_file),
            "KAFKA_SSL_CA_FILE": str(sec.kafka_ssl_ca_file),
        }

    def verify(self, what: str, t0: float) -> None:
        data = self.volume_path("data")
        env = {
            **os.environ,
            **self.client_env(),
            "DEVICESTREAM_DATA_DIR": data,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_TOPIC": self.env["KAFKA_TOPIC"],
        }
        say(f"devicestream verify {what} against the topic and the data volume ({data})")
        res = subprocess.run(
            [sys.executable, "-m", "devicestream", "verify", "--wait", str(VERIFY_WAIT_S)],
            cwd=REPO_ROOT,
            env=env,
            text=True,
            capture_output=True,
            timeout=VERIFY_WAIT_S + 300,
        )
        print(res.stdout, res.stderr, sep="", flush=True)
        if res.returncode != 0:
            raise ComposeTestError(f"devicestream verify exited {res.returncode}\n{self.logs('spark', 'merger')}")
        say(f"verify {what}: exit 0 ({time.monotonic() - t0:.0f}s since up)")

    def firing_alerts(self) -> list[str]:
        """Names of the alerts firing now, from Prometheus's own API (GET /api/v1/alerts)."""
        doc = httpx.get(f"{self.prometheus}/api/v1/alerts", timeout=10).json()
        return [a["labels"]["alertname"] for a in doc["data"]["alerts"] if a["state"] == "firing"]


def check_refusals(stack: Stack) -> None:
    """The secured broker lets in the deployment's SCRAM user and refuses a client without
    credentials and one with a wrong password (each connection made the way the clients make it)."""
    good = stack.client_security()
    cases = {
        # (a TLS client that skips SASL is not shown here: Kafka answers ApiVersions before the SASL
        # handshake, so a bare connection succeeds; every other request of it is refused)
        "without credentials (PLAINTEXT)": PLAINTEXT,
        "with a wrong password": good.model_copy(update={"kafka_sasl_password": SecretStr("not-the-password")}),
    }

    async def probe() -> dict[str, str | None]:
        return {name: await connection_failure(stack.bootstrap, sec, 15) for name, sec in cases.items()}

    if (why := asyncio.run(connection_failure(stack.bootstrap, good, 15))) is not None:
        raise ComposeTestError(f"the deployment's own client is refused: {why}")
    refusals = asyncio.run(probe())
    for name, why in refusals.items():
        if why is None:
            raise ComposeTestError(f"the secured broker let in a client {name}")
        say(f"refused, a client {name}: {why}")
    if "authentication failed" not in (refusals["with a wrong password"] or ""):
        raise ComposeTestError(f"a wrong password was not refused as such: {refusals['with a wrong password']}")


def lag_alert_fires(stack: Stack, t0: float) -> None:
    """Freeze the Spark container while the generator runs; Prometheus must fire SparkLagGrowing.
    Then unfreeze it, stop the run, and the pipeline catches up exactly once (verify exit 0)."""
    spark = stack.container("spark")["Id"]
    stack.docker("pause", spark)
    try:
        r = httpx.post(f"{stack.gateway}/generator/start", json={"rate": FREEZE_RATE, "duration_s": 600}, timeout=15)
        if r.status_code != 202:
            raise ComposeTestError(f"POST /generator/start: {r.status_code} {r.text}")
        say(f"Spark container frozen (docker pause), the generator running at {FREEZE_RATE}/s")
        frozen_at = time.monotonic()
        stack.wait_for(
            lambda: "SparkLagGrowing" in stack.firing_alerts(),
            ALERT_TIMEOUT_S,
            "Prometheus to fire SparkLagGrowing",
            "prometheus",
            "gateway",
        )
        say(f"Prometheus fires SparkLagGrowing {time.monotonic() - frozen_at:.0f}s after the freeze (/api/v1/alerts)")
        r = httpx.post(f"{stack.gateway}/generator/stop", timeout=30)
        if r.status_code != 200:
            raise ComposeTestError(f"POST /generator/stop: {r.status_code} {r.text}")
    finally:
        stack.docker("unpause", spark)
    stack.verify("after the freeze", t0)


def run(stack: Stack) -> None:
    stack.compose("down", "-v", "--timeout", "10", check=False)  # what an interrupted earlier run left
    t0 = time.monotonic()
    shown = {k: ("***" if "SECRET" in k else v) for k, v in stack.env.items()}
    say(f"up --wait ({shlex.join(f'{k}={v}' for k, v in shown.items())})")
    res = stack.compose("up", "-d", "--wait", "--no-build", "--pull", "never", check=False, timeout=UP_TIMEOUT_S + 60)
    if res.returncode != 0:
        raise ComposeTestError(f"docker compose up --wait failed:\n{res.stdout}{res.stderr}\n{stack.logs()}")
    say(f"every service healthy after {time.monotonic() - t0:.0f}s:\n{stack.compose('ps').stdout}")

    services = ("kafka", "spark", "merger", "generator", "gateway", "prometheus")
    users = {name: stack.container(name)["Config"]["User"] for name in services}
    if any(user.split(":")[0] in ("", "root", "0") for user in users.values()):
        raise ComposeTestError(f"a container runs as root: {users}")
    say(f"every container runs as a user: {users}")

    if stack.secure:
        check_refusals(stack)

    direct = httpx.post(f"http://127.0.0.1:{stack.env['GENERATOR_PORT']}/generator/stop", timeout=15)
    if direct.status_code != 401:
        raise ComposeTestError(f"the generator took a call without the internal secret: {direct.status_code}")
    say("the generator refuses a call without the internal secret (401); the gateway carries it")
    r = httpx.post(f"{stack.gateway}/generator/start", json={"rate": RATE, "count": EVENTS, "seed": 16}, timeout=15)
    if r.status_code != 202:
        raise ComposeTestError(f"POST /generator/start: {r.status_code} {r.text}")
    say(f"run started through the gateway: {EVENTS} events at {RATE}/s")

    stack.wait_for(lambda: stack.merged_rows() > 0, 300, "the first merged rows", "spark", "merger")
    spark = stack.container("spark")
    restarts, pid = spark["RestartCount"], spark["State"]["Pid"]
    # SIGKILL from outside, as a crash or the OOM killer would: the daemon sees the container die on
    # its own and applies the restart policy (`docker kill` would count as a manual stop, which
    # unless-stopped does not restart).
    os.kill(pid, 9)
    sent = stack.generator_status().acknowledged
    say(f"SIGKILLed the Spark container's main process (pid {pid}) with {sent} of {EVENTS} events acknowledged")

    def spark_back() -> bool:
        c = stack.container("spark")
        return c["RestartCount"] > restarts and c["State"]["Health"]["Status"] == "healthy"

    stack.wait_for(spark_back, RESTART_TIMEOUT_S, "the Spark container restarted and healthy", "spark")
    say(f"the Spark container restarted by its restart policy and healthy again ({time.monotonic() - t0:.0f}s)")

    def run_over() -> GeneratorStatus | None:
        s = stack.generator_status()
        return s if s.state in ("completed", "stopped", "failed") else None

    status = stack.wait_for(run_over, 600, "the generator run to end", "generator")
    if status.state != "completed" or status.acknowledged != EVENTS:
        raise ComposeTestError(f"the run did not complete: {status}\n{stack.logs('generator')}")

    stack.verify("after the run", t0)
    if not stack.secure:
        lag_alert_fires(stack, t0)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m tests.deploy.compose_run")
    p.add_argument("--secure", action="store_true", help="the secured deployment (compose.secure.yaml)")
    args = p.parse_args()
    stack = Stack(shlex.split(os.environ.get("COMPOSE_BIN", "docker compose")), secure=args.secure)
    say(f"the {'secured (SASL_SSL)' if args.secure else 'plaintext'} deployment: {shlex.join(stack.cmd[-8:])}")
    try:
        run(stack)
        return 0
    except (ComposeTestError, subprocess.SubprocessError, httpx.HTTPError) as e:
        say(f"FAILED: {e}")
        return 1
    finally:
        res = stack.compose("down", "-v", "--timeout", "30", check=False, timeout=300)
        say("down -v: " + ("done" if res.returncode == 0 else f"exit {res.returncode}\n{res.stderr}"))


if __name__ == "__main__":
    sys.exit(main())
