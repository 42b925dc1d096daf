"""The small runtime every process shares beside contract/ and kafka_io/: `logs.py` (one logging setup)
and `internal.py` (the FastAPI dependency guarding the generator's and merger's routes with the
internal secret of contract/internal.py). Nothing here runs at import time."""
