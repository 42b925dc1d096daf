#!/bin/sh
# The Spark job's container command: spark-submit as `devicestream up` runs it (same flags), with the
# connector jars baked into the image. SPARK_MASTER: local[2] (default) or spark://host:7077;
# DEVICESTREAM_SPARK_DRIVER_JAVA_OPTIONS: more options for the driver JVM (devicestream/settings.py).
set -eu
jars=$(find /opt/spark-jars -name '*.jar' | sort | paste -sd, -)
job=$(python -c 'import importlib.util; print(importlib.util.find_spec("spark_job.job").origin)')
exec spark-submit \
  --master "${SPARK_MASTER:-local[2]}" \
  --name devicestream \
  --driver-memory "${SPARK_JOB_DRIVER_MEMORY:-768m}" \
  --jars "$jars" \
  --conf spark.ui.showConsoleProgress=false \
  ${DEVICESTREAM_SPARK_DRIVER_JAVA_OPTIONS:+--conf "spark.driver.defaultJavaOptions=$DEVICESTREAM_SPARK_DRIVER_JAVA_OPTIONS"} \
  "$job"
