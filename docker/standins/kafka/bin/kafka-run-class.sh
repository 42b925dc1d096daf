#!/bin/sh
# kafka-run-class.sh of the stand-in image: one JVM on /opt/kafka/libs, heap from KAFKA_HEAP_OPTS.
exec java ${KAFKA_HEAP_OPTS:--Xmx256m} -XX:+UseG1GC -Djava.awt.headless=true \
  -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties ${KAFKA_OPTS:-} \
  -cp '/opt/kafka/libs/*' "$@"
