"""The job's topic-identity check: the checkpoint's offsets belong to one topic, by Kafka's topic id
(contract/checkpoint_topic.py). A topic deleted and created again under the same name starts its
offsets at 0; once it is written past the checkpoint's offsets, Spark would resume from them
without an error and never read what lies below. So the id is recorded when a lineage starts, and
a different id at a later start (or at a later ask during the run) fails the job with one line
telling the operator what to do (`devicestream reset-checkpoint`), exit code EXIT_REFUSED, which the
launcher does not restart until the checkpoint has been moved aside."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from contract.checkpoint_topic import CheckpointTopic, read_checkpoint_topic, refusal_line

log = logging.getLogger(__name__)

Decision = Literal["unknown", "record", "same", "refuse"]


class TopicChanged(RuntimeError):
    """The checkpoint belongs to another topic of the same name (the message is the one line)."""


def decide(recorded: CheckpointTopic | None, current_id: str | None, has_offsets: bool) -> Decision:
    """What to do with the topic id the broker gave (`current_id`, None: not known):
    unknown: nothing to compare (ask again later); record: a new lineage, or a checkpoint without
    offsets yet (nothing of it can be skipped), or one older than the record; same: it matches;
    refuse: the checkpoint's offsets belong to another topic."""
    if current_id is None:
        return "unknown"
    if recorded is None:
        return "record"
    if recorded.topic_id == current_id:
        return "same"
    return "refuse" if has_offsets else "record"


class TopicGuard:
    """Wraps the topic-id lookup (kafka_io.topic_identity.TopicIdentity): every id it hands out has
    been checked against the checkpoint's record. Raises TopicChanged (and keeps its line in
    `refusal`) when the checkpoint belongs to another topic."""

    def __init__(
        self,
        checkpoint: Path,
        topic: str,
        topic_id: Callable[[], str | None],
        has_offsets: Callable[[], bool],
    ) -> None:
        self.checkpoint = checkpoint
        self.topic = topic
        self._topic_id = topic_id
        self._has_offsets = has_offsets
        self.refusal: str | None = None

    def __call__(self) -> str | None:
        current = self._topic_id()
        recorded = read_checkpoint_topic(self.checkpoint)
        decision = decide(recorded, current, self._has_offsets() if recorded is not None else False)
        if decision == "refuse":
            assert recorded is not None and current is not None
            self.refusal = refusal_line(self.topic, recorded.topic_id, current, self.checkpoint)
            log.error(self.refusal, extra={"topic": self.topic, "checkpoint": str(self.checkpoint)})
            raise TopicChanged(self.refusal)
        if decision == "record":
            assert current is not None
            self.checkpoint.mkdir(parents=True, exist_ok=True)
            CheckpointTopic(topic=self.topic, topic_id=current, recorded_at=time.time()).write(self.checkpoint)
            log.info(
                "lineage topic recorded",
                extra={"topic": self.topic, "topic_id": current, "checkpoint": str(self.checkpoint)},
            )
        return current
