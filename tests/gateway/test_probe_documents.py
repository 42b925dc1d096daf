"""The /status probes parse what they read with the contract models: a document that breaks its
contract is reported like an unreadable one (never a crash, never a key picked by hand)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from contract.api import GeneratorStatus
from contract.merger_status import MergerStatus
from contract.progress import SparkProgress
from services.gateway.health import DocT, HttpProbe
from services.gateway.probes import probe_http, probe_spark


def _answering(body: bytes) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(200, content=body)))


def _probe(body: bytes, model: type[DocT]) -> HttpProbe[DocT]:
    async def go() -> HttpProbe[DocT]:
        async with _answering(body) as client:
            return await probe_http(client, "x", "http://x/status", 2.0, model)

    return asyncio.run(go())


def test_a_status_document_is_parsed_with_its_model() -> None:
    gen = _probe(b'{"state": "running", "acknowledged": 5}', GeneratorStatus)
    assert gen.reachable and isinstance(gen.doc, GeneratorStatus) and gen.doc.acknowledged == 5
    merger = _probe(MergerStatus(rows_merged=3).model_dump_json().encode(), MergerStatus)
    assert merger.reachable and isinstance(merger.doc, MergerStatus) and merger.doc.rows_merged == 3


def test_a_document_that_breaks_its_contract_is_an_error_not_a_crash() -> None:
    bad = _probe(b'{"state": "exploded"}', GeneratorStatus)
    assert not bad.reachable and bad.doc is None
    assert bad.error is not None and bad.error.startswith("status is not a GeneratorStatus document: state:")
    assert _probe(b"[1, 2]", MergerStatus).error == "status is not a JSON object"


def test_the_progress_file_is_read_with_its_model(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    assert asyncio.run(probe_spark(path, False, 2.0)).doc is None  # no file yet: no error either
    SparkProgress(state="stopped", batch_id=4).write(path)
    probe = asyncio.run(probe_spark(path, True, 2.0))
    assert probe.error is None and probe.doc is not None and probe.doc.batch_id == 4
    assert probe.pid_alive is None  # only a starting/running job's pid is checked
    path.write_text('{"pid": "not a pid"}')
    probe = asyncio.run(probe_spark(path, True, 2.0))
    assert probe.doc is None and probe.error is not None and probe.error.startswith("not a progress document: pid:")
