# Stand-in for apache/kafka:4.1.1, built by scripts/compose_test.sh only where Docker Hub cannot be
# reached: Debian bookworm + Debian's OpenJDK 17 JRE + Kafka 4.1.1's jars from Maven Central (the
# ones `make install` resolves for the embedded broker, runtime/maven/kafka/pom.xml), laid out as the
# official image lays them out and configured the way it documents: every KAFKA_* variable becomes a
# server property (KAFKA_FOO_BAR -> foo.bar, `__` -> `_`, `___` -> `-`), storage is formatted with
# CLUSTER_ID on first start, the broker runs in the foreground as `appuser` (uid 1000).
FROM devicestream-standin/debian:bookworm
COPY certs/ /usr/local/share/ca-certificates/
RUN update-ca-certificates \
 && mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 1000 --user-group --create-home --home-dir /home/appuser appuser \
 && mkdir -p /opt/kafka/libs /opt/kafka/config /var/lib/kafka/data /etc/kafka/docker /mnt/shared/config \
 && chown -R appuser:appuser /opt/kafka/config /var/lib/kafka /etc/kafka /mnt/shared
COPY libs/ /opt/kafka/libs/
COPY kafka/bin/ /opt/kafka/bin/
COPY kafka/log4j2.properties /opt/kafka/config/log4j2.properties
COPY kafka/run /etc/kafka/docker/run
ENV PATH=/opt/kafka/bin:$PATH
USER appuser
WORKDIR /home/appuser
CMD ["/etc/kafka/docker/run"]
