"""kafka_io/admin.py's pure part: reading a DescribeTopics answer (the rest: tests/foundation)."""

from __future__ import annotations

from kafka_io.admin import partitions_of


def test_partitions_of_a_describe_topics_answer() -> None:
    ok = [{"error_code": 0, "partitions": [{"partition": 2}, {"partition": 0}, {"partition": 1}]}]
    assert partitions_of(ok) == [0, 1, 2]
    assert partitions_of([{"error_code": 3, "partitions": []}]) == []  # UNKNOWN_TOPIC_OR_PARTITION
    assert partitions_of([]) == []
