"""Builds the /status snapshot: all probes at once, each within its own budget, and a short-lived
cache so several dashboards and a metrics scraper polling together cost one round of probes."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx

from contract.api import GeneratorStatus
from contract.merger_status import MergerStatus
from contract.pipeline_status import PipelineStatus
from services.gateway.health import Thresholds, assess
from services.gateway.probes import probe_http, probe_kafka, probe_spark
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


class StatusService:
    def __init__(self, settings: GatewaySettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client
        self.thresholds = Thresholds(
            spark_stale_after_s=settings.spark_stale_after_s,
            spark_lag_warn_offsets=settings.spark_lag_warn_offsets,
            merger_lag_warn_batches=settings.merger_lag_warn_batches,
            freshness_warn_s=settings.freshness_warn_s,
        )
        self._cached: tuple[float, PipelineStatus] | None = None
        self._inflight: asyncio.Task[PipelineStatus] | None = None
        self._last_overall: str | None = None

    async def build(self) -> PipelineStatus:
        s = self.settings
        budget = s.status_timeout_s
        kafka, generator, spark, merger = await asyncio.gather(
            probe_kafka(s.kafka_bootstrap_servers, s.topic, budget, s.kafka_security),
            probe_http(self.client, "generator", f"{s.generator_base()}/generator/status", budget, GeneratorStatus),
            probe_spark(s.layout.spark_progress, s.spark_check_pid, budget),
            probe_http(self.client, "merger", f"{s.merger_base()}/merger/status", budget, MergerStatus),
        )
        doc = assess(kafka, generator, spark, merger, now=time.time(), thresholds=self.thresholds)
        if doc.overall != self._last_overall:
            level = logging.INFO if doc.overall == "ok" else logging.WARNING
            log.log(level, "pipeline is %s", doc.overall, extra={"reasons": "; ".join(doc.reasons) or "-"})
            self._last_overall = doc.overall
        return doc

    async def snapshot(self) -> PipelineStatus:
        """A snapshot at most `status_cache_s` old; concurrent callers share one build."""
        now = time.monotonic()
        if self._cached and now - self._cached[0] < self.settings.status_cache_s:
            return self._cached[1]
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.create_task(self._build_and_cache())
        # shield: one caller going away must not cancel the build the others wait for
        return await asyncio.shield(self._inflight)

    async def _build_and_cache(self) -> PipelineStatus:
        doc = await self.build()
        self._cached = (time.monotonic(), doc)
        return doc

    async def aclose(self) -> None:
        if self._inflight and not self._inflight.done():
            self._inflight.cancel()
