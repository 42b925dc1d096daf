"""The merger's routes by area: download (merged.csv), query (merged.parquet), devices, status
(/merger/status and the metrics), probes (health, readiness)."""
