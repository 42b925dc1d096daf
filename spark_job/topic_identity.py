"""The topic's identity (Kafka's topic id), asked from the broker with the Kafka admin client of the
JVM Spark already runs (the Kafka connector ships it): a recreated topic gets a new id."""

from __future__ import annotations

import logging
from typing import Any

from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

TIMEOUT_S = 10


class TopicIdentity:
    """Call it for the topic id (None when the broker cannot be asked: logged, never fatal)."""

    def __init__(self, spark: SparkSession, bootstrap_servers: str, topic: str) -> None:
        self._spark = spark
        self._bootstrap = bootstrap_servers
        self.topic = topic
        self._admin: Any = None

    def _client(self) -> Any:
        if self._admin is None:
            jvm = self._spark.sparkContext._jvm
            assert jvm is not None
            props = jvm.java.util.Properties()
            props.put("bootstrap.servers", self._bootstrap)
            props.put("request.timeout.ms", str(TIMEOUT_S * 1000))
            props.put("default.api.timeout.ms", str(TIMEOUT_S * 1000))
            self._admin = jvm.org.apache.kafka.clients.admin.Admin.create(props)
        return self._admin

    def __call__(self) -> str | None:
        try:
            jvm = self._spark.sparkContext._jvm
            assert jvm is not None
            names = jvm.java.util.Collections.singletonList(self.topic)
            unit = jvm.java.util.concurrent.TimeUnit.SECONDS
            described = self._client().describeTopics(names).allTopicNames().get(TIMEOUT_S, unit)
            return str(described.get(self.topic).topicId().toString())
        except Exception as e:
            log.warning("cannot ask Kafka for the topic id", extra={"topic": self.topic, "error": str(e)[:300]})
            self.close()
            return None

    def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            try:
                admin.close()
            except Exception:
                log.debug("closing the admin client failed", exc_info=True)
