"""What the launcher runs (devicestream/specs.py): the components in start order, with what each
depends on and is told."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from devicestream.kafka_broker import KafkaCluster
from devicestream.settings import LauncherSettings
from devicestream.specs import build_specs, child_env, spark_spec, wrapped_argv


@pytest.fixture
def settings(tmp_path: Path) -> LauncherSettings:
    return LauncherSettings(data_dir=tmp_path, components="kafka,spark,merger,generator,gateway")


async def test_every_component_in_start_order_with_what_it_depends_on(settings: LauncherSettings) -> None:
    cluster = KafkaCluster.single(settings.layout.kafka_dir, 19092, 19093)
    async with httpx.AsyncClient() as client:
        specs = build_specs(settings, client, cluster)
    assert [s.name for s in specs] == ["kafka", "spark", "merger", "generator", "gateway"]
    deps = {s.name: s.depends_on for s in specs}
    assert deps == {
        "kafka": (),
        "spark": ("kafka",),
        "merger": (),
        "generator": ("kafka",),
        "gateway": ("generator", "merger"),
    }
    assert all(s.log_file == settings.layout.logs_dir / f"{s.name}.log" for s in specs)
    assert [s.name for s in specs if s.graceful_pid] == ["spark"]  # the driver, not the JVM, stops the query
    assert specs[0].url == "127.0.0.1:19092" and specs[-1].url == f"http://127.0.0.1:{settings.gateway_port}/"


async def test_a_quorum_is_named_per_node_and_only_wanted_components_run(tmp_path: Path) -> None:
    settings = LauncherSettings(data_dir=tmp_path, components="kafka,merger")
    cluster = KafkaCluster.local(settings.layout.kafka_dir, 19092, 3)
    async with httpx.AsyncClient() as client:
        specs = build_specs(settings, client, cluster)
        external = build_specs(settings, client, None)
    assert [(s.name, s.quorum) for s in specs] == [
        ("kafka-1", "kafka"),
        ("kafka-2", "kafka"),
        ("kafka-3", "kafka"),
        ("merger", ""),
    ]
    assert [s.name for s in external] == ["merger"]


def test_components_are_told_where_everything_is(settings: LauncherSettings) -> None:
    env = child_env(settings, "h:9")
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "h:9" and env["DEVICESTREAM_DATA_DIR"] == str(settings.data_dir.resolve())
    assert env["GATEWAY_MERGER_URL"] == f"http://127.0.0.1:{settings.merger_port}"


async def test_each_component_runs_under_the_log_wrapper(settings: LauncherSettings) -> None:
    async with httpx.AsyncClient() as client:
        merger = build_specs(settings, client, None)[1]
    argv = wrapped_argv(merger, settings)
    assert argv[:3] == [sys.executable, "-m", "devicestream.logpump"]
    assert argv[3:7] == [str(merger.log_file), str(settings.log_max_bytes), str(settings.log_backups), "--"]
    assert argv[7:] == merger.argv == [sys.executable, "-m", "services.merger"]


def test_the_spark_driver_gets_its_jvm_options_as_spark_submit_defaults(tmp_path: Path) -> None:
    tuned = spark_spec(LauncherSettings(data_dir=tmp_path, spark_driver_java_options="-XX:CompileThresholdScaling=0.1"))
    at = tuned.argv.index("spark.driver.defaultJavaOptions=-XX:CompileThresholdScaling=0.1")
    assert tuned.argv[at - 1] == "--conf" and tuned.argv[-1].endswith("job.py")  # (before the script)
    plain = spark_spec(LauncherSettings(data_dir=tmp_path))  # (none by default)
    assert not any("defaultJavaOptions" in a for a in plain.argv)
