"""spark/checkpoint/devicestream-topic.json: which topic (by Kafka's topic id) the Spark checkpoint's
offsets belong to.

The Spark job writes it when a lineage starts (a new checkpoint: the first time the topic id is
known) and checks it at every start and whenever it asks the broker for the topic id again
(spark_job/topic_guard.py); `devicestream reset-checkpoint` and the launcher read it. It lives
inside the checkpoint folder so that it goes wherever the checkpoint goes: deleted with it, moved
aside with it by `devicestream reset-checkpoint`, restored with it from a backup."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contract.files import atomic_write_bytes
from contract.validation import first_problem

FILE_NAME: Final = "devicestream-topic.json"

#: What the operator runs when the job refuses a checkpoint of another topic.
RESET_COMMAND: Final = "devicestream reset-checkpoint"


class CheckpointTopic(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    topic: str
    topic_id: str = Field(description="Kafka's topic id (base64) when the lineage started.")
    recorded_at: float = Field(description="Epoch seconds it was recorded.")

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_INDENT_2)

    def write(self, checkpoint: Path) -> None:
        atomic_write_bytes(checkpoint / FILE_NAME, self.to_bytes(), durable=True)


class CheckpointTopicUnreadable(ValueError):
    """The file exists but is not a CheckpointTopic document."""


def read_checkpoint_topic(checkpoint: Path) -> CheckpointTopic | None:
    """The checkpoint's topic record, None when it has none (a new checkpoint, or one older than
    the record). Raises CheckpointTopicUnreadable when it does not parse."""
    try:
        raw = (checkpoint / FILE_NAME).read_bytes()
    except FileNotFoundError:
        return None
    try:
        return CheckpointTopic.model_validate_json(raw)
    except ValidationError as e:
        raise CheckpointTopicUnreadable(f"{checkpoint / FILE_NAME} is not a topic record: {first_problem(e)}") from None


def refusal_line(topic: str, recorded_id: str, current_id: str, checkpoint: Path) -> str:
    """The one line the job fails with when its checkpoint belongs to another topic of the same name."""
    return (
        f"topic {topic!r} was recreated (topic id {recorded_id}, now {current_id}): the checkpoint "
        f"{checkpoint} holds offsets of the old topic, and resuming from them would skip the new "
        f"topic's records below them; run `{RESET_COMMAND}` to start a new lineage from the earliest offsets"
    )
