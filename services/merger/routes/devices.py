"""GET /devices (paged) and /devices/{deviceId}: the DeviceTracker's figures (the gateway's only:
app.py guards them with the internal secret)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from contract.devices import DevicesPage, DevicesResponse
from services.merger.deps import Tracker
from services.merger.errors import UnknownDeviceError

router = APIRouter(tags=["devices"])


@router.get("/devices", summary="One page of the devices' figures, over the whole run and the recent window")
def devices(page: Annotated[DevicesPage, Query()], tracker: Tracker) -> DevicesResponse:
    """Kept up to date as batches are merged (covered_size catches up with committed_size within
    a fraction of a second); consistent with merged.csv across crashes of the merger. Sorted by
    deviceId; the next page starts `after` the previous page's `next_after`."""
    return tracker.response(limit=page.limit, after=page.after)


@router.get(
    "/devices/{deviceId}",
    summary="One device's figures",
    responses={404: {"description": "No merged row has this deviceId."}},
)
def device(deviceId: Annotated[str, Path(examples=["D001"])], tracker: Tracker) -> DevicesResponse:
    doc = tracker.response(deviceId)
    if not doc.devices:
        raise UnknownDeviceError(f"no merged row has deviceId {deviceId!r}")
    return doc
