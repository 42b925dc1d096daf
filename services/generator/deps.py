"""What the routes need, as FastAPI dependencies: the settings, the engine and the metrics
registry. The lifespan (app.py) puts them on `app.state`; these read them from there, so no
route holds state of its own."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry

from services.generator.engine import Engine
from services.generator.settings import GeneratorSettings


def get_settings(request: Request) -> GeneratorSettings:
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_registry(request: Request) -> CollectorRegistry:
    return request.app.state.registry


Settings = Annotated[GeneratorSettings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
Registry = Annotated[CollectorRegistry, Depends(get_registry)]
