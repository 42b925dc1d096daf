"""`python -m spark_job`: the same job without spark-submit (pyspark starts its own JVM; pass the
connector jars with SPARK_JOB_JARS and the master with SPARK_MASTER)."""

from __future__ import annotations

import sys

from spark_job.job import main

sys.exit(main())
