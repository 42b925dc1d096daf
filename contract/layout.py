"""Where each component keeps its files in the shared data folder.

<data_dir>/
  kafka/                 embedded broker: data (kafka/data) and config
  logs/                  one log file per component (launcher)
  run/
    launcher.json        the running stack as its launcher sees it (contract/launcher.py)
  spark/
    checkpoint/          the streaming query's checkpoint
    rows/                committed batch files  batch-<lineage>-<id>.csv (temp + rename), each
                         with its batch-<lineage>-<id>.manifest.json (contract.batches)
    rejects/             committed reject files batch-<lineage>-<id>.csv (batches with rejects only)
    progress.json        latest StreamingQueryProgress summary (atomic replace)
    lineage.json         the sink's run counter (contract.batches.LineageCounter): outside the
                         checkpoint, so a restored checkpoint backup cannot move it back
  merger/
    merged.csv           the merged output (with MERGER_SEGMENT_BYTES: its first segment)
    segments/            merged-<seq>.csv: its later segments (contract/segments.py)
    segments.json        the retained and retired segments, for readers (verify)
    rejects.csv          every rejected record of the merged batches (REJECT_COLUMNS), appended in
                         the same commit as the batch's rows; the batch's file in spark/rejects is
                         then deleted
    state.json           last merged batch, committed byte length, next offset per partition,
                         counts, events (atomic replace)
    journal.jsonl        one line per commit (the commit point): rebuilds a lost state.json
    devices.json         the device figures and the committed size they cover
    quarantine/          invalid batch files with a .reason.txt beside each
  generator/
    state.json           next eventOffset to hand out (never reused across restarts)
    runs/                one ledger per run: <run id>.jsonl (what it injected where; contract/ledger.py)
  gateway/
    series/              one time series per run: <run id>.jsonl (sampled about once a second,
                         bounded, removed with the run's ledger; contract/run_series.py)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MergerFiles:
    """The merger's files, in its folder (<data_dir>/merger unless MERGER_OUTPUT_DIR moves it)."""

    dir: Path

    @property
    def merged_csv(self) -> Path:
        return self.dir / "merged.csv"

    @property
    def merged_rejects(self) -> Path:
        """The merger's one rejects file, beside merged.csv."""
        return self.dir / "rejects.csv"

    @property
    def state(self) -> Path:
        return self.dir / "state.json"

    @property
    def journal(self) -> Path:
        return self.dir / "journal.jsonl"

    @property
    def devices(self) -> Path:
        return self.dir / "devices.json"

    @property
    def quarantine_dir(self) -> Path:
        return self.dir / "quarantine"


@dataclass(frozen=True)
class DataLayout:
    root: Path

    @property
    def kafka_dir(self) -> Path:
        return self.root / "kafka"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def launcher_state(self) -> Path:
        return self.run_dir / "launcher.json"

    @property
    def spark_dir(self) -> Path:
        return self.root / "spark"

    @property
    def spark_checkpoint(self) -> Path:
        return self.spark_dir / "checkpoint"

    @property
    def spark_rows(self) -> Path:
        return self.spark_dir / "rows"

    @property
    def spark_rejects(self) -> Path:
        return self.spark_dir / "rejects"

    @property
    def spark_progress(self) -> Path:
        return self.spark_dir / "progress.json"

    @property
    def spark_lineage_counter(self) -> Path:
        return self.spark_dir / "lineage.json"

    @property
    def merger_dir(self) -> Path:
        return self.root / "merger"

    @property
    def merger_files(self) -> MergerFiles:
        return MergerFiles(self.merger_dir)

    @property
    def merged_csv(self) -> Path:
        return self.merger_files.merged_csv

    @property
    def merged_rejects(self) -> Path:
        return self.merger_files.merged_rejects

    @property
    def merger_state(self) -> Path:
        return self.merger_files.state

    @property
    def quarantine_dir(self) -> Path:
        return self.merger_files.quarantine_dir

    @property
    def generator_dir(self) -> Path:
        return self.root / "generator"

    @property
    def generator_state(self) -> Path:
        return self.generator_dir / "state.json"

    @property
    def generator_runs(self) -> Path:
        return self.generator_dir / "runs"

    @property
    def gateway_dir(self) -> Path:
        return self.root / "gateway"

    @property
    def run_series(self) -> Path:
        """The per-run time series the gateway samples (contract/run_series.py)."""
        return self.gateway_dir / "series"
