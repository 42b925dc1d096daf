# syntax=docker/dockerfile:1
# The Spark job: Java 17 JRE + pyspark (its own Spark distribution) + the Kafka connector jars, resolved
# at build time with Maven from runtime/maven/spark/pom.xml exactly as scripts/install.sh does, and the
# job's local file system (runtime/maven/localfs).
# SPARK_MASTER picks local[N] (default) or a standalone cluster (spark://host:7077).

FROM maven:3.9.9-eclipse-temurin-17 AS jars
WORKDIR /build
COPY runtime/maven/spark/pom.xml pom.xml
RUN mvn -q -B -f pom.xml dependency:copy-dependencies -DoutputDirectory=/opt/spark-jars -DexcludeTransitive=true
# The job's local file system without child processes (spark_job/session.py), built as install.sh does.
COPY runtime/maven/localfs/pom.xml localfs/pom.xml
COPY runtime/maven/localfs/src localfs/src
RUN mvn -q -B -f localfs/pom.xml package && cp localfs/target/devicestream-localfs.jar /opt/spark-jars/

FROM python:3.11.13-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
    > requirements.txt \
 && /opt/venv/bin/pip install -c constraints.txt -r requirements.txt
COPY README.md LICENSE ./
COPY contract contract
COPY kafka_io kafka_io
COPY service_kit service_kit
COPY spark_job spark_job
RUN /opt/venv/bin/pip install --no-deps .

FROM python:3.11.13-slim-bookworm
# The JRE's postinst needs the man folder that slim images drop; procps gives Spark's scripts `ps`.
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 devicestream \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/devicestream devicestream \
 && mkdir -p /data && chown 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
COPY --from=jars /opt/spark-jars /opt/spark-jars
COPY docker/spark-submit.sh /usr/local/bin/devicestream-spark
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    PYSPARK_PYTHON=/opt/venv/bin/python PYSPARK_DRIVER_PYTHON=/opt/venv/bin/python \
    DEVICESTREAM_DATA_DIR=/data
WORKDIR /home/devicestream
USER 10001:10001
CMD ["devicestream-spark"]
