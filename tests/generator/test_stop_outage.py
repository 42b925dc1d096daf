"""POST /generator/stop while the broker is frozen (SIGSTOP: connections open, nothing answered)."""

from __future__ import annotations

import contextlib
import os
import signal

import httpx
import pytest

from contract.api import GeneratorStatus
from services.gateway.settings import GatewaySettings
from services.generator.settings import GeneratorSettings
from tests.generator.conftest import read_topic
from tests.helpers import wait_for


def test_the_flush_timeout_is_below_the_gateways_command_timeout() -> None:
    """A stop through the gateway must get the generator's answer, not a 504."""
    flush = GeneratorSettings().flush_timeout_s
    assert flush + 2.0 <= GatewaySettings().command_timeout_s


@pytest.mark.integration
def test_stop_with_the_broker_frozen_answers_in_time_and_reports_what_was_not_delivered(
    private_kafka, generator_factory
) -> None:
    topic = private_kafka.new_topic()
    gen = generator_factory(private_kafka.bootstrap, topic, GENERATOR_DEGRADED_AFTER_S="1")
    gen.post("/generator/start", {"rate": 2000, "seed": 3})
    wait_for(lambda: gen.status().acknowledged > 500, 30, "first acknowledgements", logs=[gen.proc.log_file])

    broker = private_kafka.proc.pid
    os.kill(broker, signal.SIGSTOP)
    try:
        wait_for(
            lambda: (s := gen.status()).state == "degraded" and s.in_flight > 0,
            30,
            "the run to notice the frozen broker",
            logs=[gen.proc.log_file],
        )
        # The client waits no longer than the gateway would: the generator must answer first.
        resp = httpx.post(f"{gen.url}/generator/stop", timeout=GatewaySettings().command_timeout_s)
        assert resp.status_code == 200, resp.text
        st = GeneratorStatus.model_validate_json(resp.content)
        assert st.state == "stopped" and st.run.ended_at is not None
        assert st.not_delivered >= st.in_flight > 0
        assert st.acknowledged + st.in_flight <= st.sent
        assert "not delivered" in st.last_error
        assert gen.status().state == "stopped"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(broker, signal.SIGCONT)

    # Kafka back: a new run starts and completes; nothing acknowledged was lost.
    acknowledged = st.acknowledged
    gen.post("/generator/start", {"rate": 2000, "count": 500})
    st2 = gen.wait_state({"completed"}, 60)
    assert st2.acknowledged == 500
    assert len(read_topic(private_kafka.bootstrap, topic)) >= acknowledged + 500
