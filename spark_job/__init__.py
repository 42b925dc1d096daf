"""The Spark Structured Streaming job: Kafka device events -> one CSV row per device reading.

Modules: `settings` (SPARK_JOB_* env), `schema` (the event as a StructType), `transform` (pure
DataFrame -> DataFrame functions), `sink` (foreachBatch writer: one committed file per micro-batch),
`progress` (progress.json via a StreamingQueryListener), `session` (SparkSession builder), `job`
(the thin main run by spark-submit). Nothing here starts Spark or reads the environment at import
time."""
