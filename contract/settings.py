"""Settings shared by every component. Each component has its own frozen settings class with its own
env prefix (GENERATOR_, MERGER_, SPARK_JOB_, GATEWAY_); these few are read under their plain names
because every component and the launcher must agree on them: the data folder, the Kafka cluster and
topic, and how to connect to it securely (contract/kafka.py: KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*...)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from contract.events import TOPIC_DEFAULT
from contract.kafka import KafkaSecurity
from contract.layout import DataLayout


class PipelineSettings(KafkaSecurity):
    """Mixin-style base: subclass it, set `model_config` with your env prefix, add your fields.
    `settings.kafka_security` is the Kafka client security part, for the mappings in kafka_io/ (clients.py, java.py)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True, hide_input_in_errors=True)

    data_dir: Path = Field(
        default=Path("var"),
        validation_alias=AliasChoices("DEVICESTREAM_DATA_DIR", "data_dir"),
        description="The shared data folder (Kafka data, Spark output, merged.csv, logs).",
    )
    kafka_bootstrap_servers: str = Field(
        default="",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"),
        description="host:port[,host:port]. Empty: the launcher starts the embedded broker and sets it.",
    )
    topic: str = Field(
        default=TOPIC_DEFAULT,
        validation_alias=AliasChoices("KAFKA_TOPIC", "topic"),
        description="The events topic.",
    )

    @property
    def layout(self) -> DataLayout:
        return DataLayout(self.data_dir)

    def require_bootstrap(self) -> str:
        if not self.kafka_bootstrap_servers:
            raise MissingSettingError(
                "KAFKA_BOOTSTRAP_SERVERS is not set: start the pipeline with `devicestream up` "
                "(it starts a broker and sets it) or point it at your Kafka cluster, e.g. "
                "KAFKA_BOOTSTRAP_SERVERS=broker1:9092"
            )
        return self.kafka_bootstrap_servers


class MissingSettingError(RuntimeError):
    """A required setting is missing; the message says what to set."""
