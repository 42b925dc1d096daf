"""The alert rules (deploy/prometheus/alerts.yml) checked and unit-tested with Prometheus's own
promtool (Debian's `prometheus` package; scripts/install.sh installs it), the scrape configuration
checked, the services' /metrics linted, and every alert covered by a unit test and a README runbook
section. Without promtool (not root, no apt-get) the promtool tests skip and say so."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found: scripts/install.sh installs Debian's `prometheus` package as root "
    "(or: sudo apt-get install -y prometheus)",
)


def promtool(*args: str, stdin: bytes | None = None, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], input=stdin.decode() if stdin else None, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def alert_names() -> list[str]:
    doc = yaml.safe_load((PROM / "alerts.yml").read_text())
    return [r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_the_alerts_are_defined() -> None:
    """The issue's eight, and SourceRecordsNotMerged (records the merger knows it has not merged)."""
    assert alert_names() == [
        "SparkLagGrowing",
        "FreshnessP99High",
        "NoNewRows",
        "BatchQuarantined",
        "SourceRecordsNotMerged",
        "ComponentRestarting",
        "DataDiskNearlyFull",
        "GeneratorDeliveryErrors",
        "GatewayRefusingDownloads",
    ]


def test_every_alert_has_a_unit_test_that_sees_it_fire() -> None:
    doc = yaml.safe_load((PROM / "alerts_test.yml").read_text())
    firing = {t["alertname"] for group in doc["tests"] for t in group.get("alert_rule_test", []) if t.get("exp_alerts")}
    assert set(alert_names()) <= firing, f"alerts without a firing unit test: {set(alert_names()) - firing}"


def test_every_alert_has_a_runbook_section_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "\n## Runbook\n" in readme
    runbook = readme.split("\n## Runbook\n", 1)[1].split("\n## ", 1)[0]
    sections = re.findall(r"^### (\w+)$", runbook, flags=re.M)  # "### Recreate a topic ...": an action
    assert sections == alert_names()
    doc = yaml.safe_load((PROM / "alerts.yml").read_text())
    for rule in (r for g in doc["groups"] for r in g["rules"]):
        assert rule["annotations"]["runbook"] == f"README.md#{rule['alert'].lower()}"


@needs_promtool
def test_promtool_check_rules() -> None:
    out = promtool("check", "rules", "alerts.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in out.stdout


@needs_promtool
def test_promtool_test_rules() -> None:
    out = promtool("test", "rules", "alerts_test.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@needs_promtool
def test_promtool_check_config(tmp_path: Path) -> None:
    """The deployment's prometheus.yml with the target files compose gives it."""
    config = (PROM / "prometheus.yml").read_text().replace("/etc/prometheus/", f"{tmp_path}/")
    (tmp_path / "prometheus.yml").write_text(config)
    shutil.copy(PROM / "alerts.yml", tmp_path / "alerts.yml")
    out = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert out.returncode == 0, out.stdout + out.stderr


def _gateway_exposition() -> bytes:
    from services.gateway.metrics import GatewayMetrics

    m = GatewayMetrics()
    m.stage_count.labels("rows_merged").set(1)
    m.up.labels("spark").set(1)
    m.health.labels("spark").set(0)
    m.requests.labels("GET", "/status", "200").inc()
    m.upstream_errors.labels("merger", "unreachable").inc()
    m.spark_started_at.set(1.7e9)
    return generate_latest(m.registry)


def _merger_exposition(tmp_path: Path) -> bytes:
    from services.merger.metrics import MergerMetrics, StateCollector
    from services.merger.state import MergerState

    m = MergerMetrics(tmp_path)
    m.freshness.observe(0.3)
    m.registry.register(StateCollector(lambda: MergerState.fresh().with_events([])))
    text = generate_latest(m.registry)
    assert b"devicestream_data_disk_free_bytes" in text and b"process_start_time_seconds" in text
    return text


def _generator_exposition() -> bytes:
    from services.generator.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    return generate_latest(registry)


@needs_promtool
@pytest.mark.parametrize("service", ["gateway", "merger", "generator"])
def test_promtool_check_metrics(service: str, tmp_path: Path) -> None:
    """Each service's /metrics passes Prometheus's own linter (e.g. only counters end in _total)."""
    text = {
        "gateway": _gateway_exposition,
        "merger": lambda: _merger_exposition(tmp_path),
        "generator": _generator_exposition,
    }[service]()
    out = promtool("check", "metrics", stdin=text)
    assert out.returncode == 0, out.stdout + out.stderr


def test_merger_disk_gauges_describe_the_data_folder(tmp_path: Path) -> None:
    from services.merger.metrics import MergerMetrics

    registry = MergerMetrics(tmp_path).registry
    free = registry.get_sample_value("devicestream_data_disk_free_bytes")
    size = registry.get_sample_value("devicestream_data_disk_size_bytes")
    usage = shutil.disk_usage(tmp_path)
    assert size == usage.total and free is not None and 0 < free <= size
    assert math.isclose(free, usage.free, rel_tol=0.05)
