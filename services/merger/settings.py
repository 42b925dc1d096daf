"""Settings of the merger service (env prefix MERGER_, plus the shared pipeline settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from contract.internal import InternalSecretSettings
from contract.layout import MergerFiles
from contract.settings import PipelineSettings


class MergerSettings(PipelineSettings, InternalSecretSettings):
    model_config = SettingsConfigDict(env_prefix="MERGER_", env_file=".env", extra="ignore", frozen=True)

    host: str = Field(default="127.0.0.1", description="Interface the HTTP API listens on.")
    port: int = Field(default=8002, ge=0, le=65535, description="Port of the HTTP API.")
    delete_merged_batches: bool = Field(
        default=True,
        description="Delete a batch file once it is merged (and stale re-runs of merged batches), and its "
        "reject file once appended to rejects.csv, so the disk stays bounded apart from merged.csv and rejects.csv.",
    )
    rescan_interval_s: float = Field(
        default=2.0, gt=0, description="Safety-net rescan of the input folder, besides file events."
    )
    gap_timeout_s: float = Field(
        default=10.0, ge=0, description="How long a missing batch id is waited for before it is reported."
    )
    first_batch_id: int = Field(default=0, ge=0, description="The batch id expected first on a fresh state.")
    # 32 + 16 MiB: a catch-up over 4M rows peaked at 226 MB RSS instead of 269 with 64 + 32, at the
    # same speed (16 MiB groups were ~20% slower).
    max_group_bytes: int = Field(
        default=32 * 1024 * 1024,
        gt=0,
        description="Ready batches are appended in groups with one fsync and one state write per group; "
        "a group stops growing past this many bytes.",
    )
    read_ahead_bytes: int = Field(
        default=16 * 1024 * 1024,
        gt=0,
        description="Batch files are read and checked ahead while the bytes in flight stay under this "
        "(one file at least): with max_group_bytes, it bounds the merger's memory per commit.",
    )
    file_budget_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=4096,
        description="A batch whose rows and rejects files hold more than this many bytes is committed alone, "
        "read, checked and appended in row-bounded chunks of about this size (one commit, as any batch): "
        "the merger's memory stays bounded by bytes whatever a batch holds.",
    )
    max_file_attempts: int = Field(
        default=3,
        ge=1,
        description="A batch file that fails to merge for an unexpected reason (not a broken contract) "
        "is retried this many times in all, then quarantined with the error as its reason.",
    )
    max_group_batches: int = Field(default=500, gt=0, description="At most this many batches per group.")
    retry_backoff_max_s: float = Field(
        default=30.0, gt=0, description="Longest wait between retries after an I/O error (e.g. disk full)."
    )
    quarantine_max_files: int = Field(
        default=1000, ge=1, description="The quarantine folder keeps at most this many batch files (oldest pruned)."
    )
    quarantine_max_bytes: int = Field(
        default=1024 * 1024 * 1024, ge=1, description="... and at most this many bytes (oldest pruned)."
    )
    journal_max_bytes: int = Field(
        default=4 * 1024 * 1024,
        gt=0,
        description="journal.jsonl (one line per commit, to rebuild state.json) is cut back to its last "
        "line past this size.",
    )
    segment_bytes: int = Field(
        default=0,
        ge=0,
        description="0: merged.csv is one file that grows forever. Above 0: merged.csv is kept in segments, and "
        "the segment being appended to is closed once it holds this many bytes (at the next commit; a segment "
        "holds at most this plus one commit) and a new one begins, in segments/ beside merged.csv. GET "
        "/merged.csv serves the retained segments as one file.",
    )
    retain_bytes: int = Field(
        default=0,
        ge=0,
        description="With segments: closed segments are removed, oldest first, while they hold more than this "
        "many bytes (0: no bound). Their rows are reported as retired (verify, /merger/status, /devices).",
    )
    retain_age_s: float = Field(
        default=0,
        ge=0,
        description="With segments: a closed segment is removed once it was closed this many seconds ago "
        "(0: no bound).",
    )
    compact_segments: bool = Field(
        default=True,
        description="With segments: each closed segment is copied to Parquet (typed columns) in the background, "
        "written atomically and recorded in a commit; filters then read the Parquet copy.",
    )
    keep_segment_csv: bool = Field(
        default=True,
        description="With compaction: false removes a closed segment's CSV file once its Parquet copy is "
        "committed (GET /merged.csv renders the copy back to the same bytes).",
    )
    input_dir: Path | None = Field(default=None, description="Batch files folder (default: <data_dir>/spark/rows).")
    rejects_input_dir: Path | None = Field(
        default=None,
        description="The Spark job's reject files folder (default: <data_dir>/spark/rejects): each batch's "
        "file is appended to rejects.csv in the batch's commit, then deleted.",
    )
    output_dir: Path | None = Field(
        default=None,
        description="merged.csv, rejects.csv, state.json and quarantine/ (default: <data_dir>/merger).",
    )
    progress_file: Path | None = Field(
        default=None, description="The Spark job's progress.json (default: <data_dir>/spark/progress.json)."
    )

    devices_window_s: int = Field(
        default=300,
        ge=1,
        le=86_400,
        description="GET /devices' recent window: rows whose eventTime lies in the last this many seconds up to now.",
    )
    devices_max: int = Field(
        default=10_000,
        ge=1,
        description="The device figures keep this many devices, the most recently merged; older ones are dropped "
        "and counted (devices_dropped, rows_dropped in GET /devices), so memory and the snapshot stay bounded.",
    )
    queries_at_once: int = Field(
        default=2, ge=1, le=64, description="Filtered merged.csv / merged.parquet answers computed at once."
    )
    query_queue_max: int = Field(
        default=8,
        ge=0,
        description="Filtered answers waiting for their turn at most; one more gets 503 with Retry-After. A "
        "waiting or running query whose client has gone is dropped (its work cancelled, its temp file removed).",
    )
    devices_snapshot_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="How often the device figures are saved (with the merged.csv size they cover); after a crash "
        "the merger reads on from there.",
    )

    @property
    def rows_dir(self) -> Path:
        return self.input_dir if self.input_dir is not None else self.layout.spark_rows

    @property
    def rejects_dir(self) -> Path:
        return self.rejects_input_dir if self.rejects_input_dir is not None else self.layout.spark_rejects

    @property
    def merger_dir(self) -> Path:
        return self.output_dir if self.output_dir is not None else self.layout.merger_dir

    @property
    def files(self) -> MergerFiles:
        """The merger's files, named by contract.layout, in merger_dir."""
        return MergerFiles(self.merger_dir)

    @property
    def merged_csv(self) -> Path:
        return self.files.merged_csv

    @property
    def merged_rejects(self) -> Path:
        return self.files.merged_rejects

    @property
    def state_file(self) -> Path:
        return self.files.state

    @property
    def devices_file(self) -> Path:
        return self.files.devices

    @property
    def journal_file(self) -> Path:
        return self.files.journal

    @property
    def quarantine_dir(self) -> Path:
        return self.files.quarantine_dir

    @property
    def spark_progress(self) -> Path:
        return self.progress_file if self.progress_file is not None else self.layout.spark_progress
