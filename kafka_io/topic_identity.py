"""The topic's identity (Kafka's topic id), asked from the broker with the Kafka admin client of the
JVM Spark already runs (the Kafka connector ships it): a recreated topic gets a new id.

The admin client is configured from the same mapping as the Kafka source (`SparkJobSettings.
kafka_client_config`: bootstrap servers plus kafka_io.java.java_client_config, TLS and SASL
included), so it reaches every broker the source reaches. A failed ask never costs every batch:
each ask waits at most `timeout_s` (the first, at the job's start, `first_timeout_s`), and after a
failure the next one is only made once a backoff (doubling from `backoff_s` to `max_backoff_s`)
has passed; until then the call answers None at once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only the Spark job imports this module, with its session
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0
#: The first ask of the process (the job's check at start, before the query runs) may wait longer:
#: a first TLS + SASL handshake on a loaded machine took more than 5 s.
FIRST_TIMEOUT_S = 30.0
BACKOFF_S = 5.0
MAX_BACKOFF_S = 60.0


def next_backoff(current_s: float | None, first_s: float, max_s: float) -> float:
    """The wait after a failed ask: `first_s` after the first failure, then doubled up to `max_s`."""
    return first_s if current_s is None else min(current_s * 2, max_s)


class TopicIdentity:
    """Call it for the topic id (None when the broker cannot be asked, or was not asked because the
    last ask failed less than the backoff ago: logged, never fatal)."""

    def __init__(
        self,
        spark: SparkSession,
        client_config: Mapping[str, str],
        topic: str,
        *,
        timeout_s: float = TIMEOUT_S,
        first_timeout_s: float = FIRST_TIMEOUT_S,
        backoff_s: float = BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._spark = spark
        self._config = dict(client_config)
        self.topic = topic
        self.timeout_s = timeout_s
        self.first_timeout_s = first_timeout_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._clock = clock
        self._admin: Any = None
        self._backoff: float | None = None
        self._next_ask = 0.0
        #: how many times the broker was asked (the backoff's effect, for tests and logs)
        self.asks = 0

    def _client(self) -> Any:
        if self._admin is None:
            jvm = self._spark.sparkContext._jvm
            assert jvm is not None
            props = jvm.java.util.Properties()
            for key, value in self._config.items():
                props.put(key, value)
            ms = str(int(self.timeout_s * 1000))
            props.put("request.timeout.ms", ms)
            props.put("default.api.timeout.ms", ms)
            self._admin = jvm.org.apache.kafka.clients.admin.Admin.create(props)
        return self._admin

    def __call__(self) -> str | None:
        now = self._clock()
        if now < self._next_ask:
            return None
        self.asks += 1
        timeout_s = self.first_timeout_s if self.asks == 1 else self.timeout_s
        try:
            jvm = self._spark.sparkContext._jvm
            assert jvm is not None
            names = jvm.java.util.Collections.singletonList(self.topic)
            unit = jvm.java.util.concurrent.TimeUnit.MILLISECONDS
            ms = int(timeout_s * 1000)
            options = jvm.org.apache.kafka.clients.admin.DescribeTopicsOptions().timeoutMs(ms)
            described = self._client().describeTopics(names, options).allTopicNames().get(ms, unit)
            topic_id = str(described.get(self.topic).topicId().toString())
        except Exception as e:
            self._backoff = next_backoff(self._backoff, self.backoff_s, self.max_backoff_s)
            self._next_ask = self._clock() + self._backoff
            log.warning(
                "cannot ask Kafka for the topic id",
                extra={"topic": self.topic, "retry_in_s": self._backoff, "error": _redacted(str(e), self._config)},
            )
            self.close()
            return None
        self._backoff, self._next_ask = None, 0.0
        return topic_id

    def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            try:
                jvm = self._spark.sparkContext._jvm
                assert jvm is not None
                admin.close(jvm.java.time.Duration.ZERO)  # abandon a pending ask rather than wait for it
            except Exception:
                log.debug("closing the admin client failed", exc_info=True)


def _redacted(text: str, config: Mapping[str, str]) -> str:
    """`text` cut to 300 characters, without the JAAS config (it holds the password)."""
    jaas = config.get("sasl.jaas.config")
    return (text.replace(jaas, "<sasl.jaas.config>") if jaas else text)[:300]
