"""Kafka I/O, the one place for it: every component's Kafka clients and calls.

- `clients.py`: the aiokafka clients and their options (TLS, SASL) from contract.kafka.KafkaSecurity;
- `java.py`: the same settings for Kafka's Java client (Spark's Kafka source, the JVM admin, Kafka's tools);
- `admin.py`: administration (topics, partitions, end offsets, readiness, topic creation);
- `reachability.py`: whether a bootstrap server answers and why a connection fails, in one line;
- `topic_identity.py`: the topic id, asked through the JVM admin client of the Spark job.

Components import contract/ and this package, never each other. Nothing here runs at import time."""
