"""The hub application: FastAPI app factory and its lifespan (database, broker, ingest)."""

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlmodel import Session

from hub import consent
from hub.api import consent as consent_api
from hub.api import devices as devices_api
from hub.api import info as info_api
from hub.api import ingest as ingest_api
from hub.api import keys as keys_api
from hub.api import lorawan as lorawan_api
from hub.api import open as open_api
from hub.db import make_engine, migrate
from hub.pages import private as private_page
from hub.settings import Settings, get_settings

log = logging.getLogger("hub")


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "request"


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    sentences = [f"{_field(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}" for e in errors]
    return JSONResponse(
        status_code=422,
        content={"detail": "; ".join(sentences), "errors": [dict(e, ctx=None) for e in errors]},
    )


def create_app(
    settings: Settings | None = None,
    *,
    start_services: bool = True,
    on_ready: Callable[[FastAPI], None] | None = None,
) -> FastAPI:
    """Build the hub. `start_services` starts the MQTT broker (embedded, when no broker URL is set) and ingest."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.sqlalchemy_url)
        migrate(engine)
        with Session(engine) as session:
            consent.ensure_bundled_texts(session)
        app.state.engine = engine
        app.state.settings = settings
        services = None
        if start_services:
            from hub.services import HubServices

            services = HubServices(settings, engine)
            await services.start()
        app.state.services = services
        if on_ready is not None:
            on_ready(app)
        try:
            yield
        finally:
            if services is not None:
                await services.stop()
            engine.dispose()

    app = FastAPI(
        title=settings.hub_name,
        summary="Community sensing hub: devices registered with their owners' consent, readings, open data.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    for router in (devices_api.router, consent_api.router, keys_api.router, open_api.router):
        app.include_router(router, prefix="/api/v1")
    app.include_router(ingest_api.router, prefix="/api/v1")
    app.include_router(lorawan_api.router, prefix="/api/v1")
    app.include_router(info_api.router, prefix="/api/v1")
    app.include_router(private_page.router)  # /devices/{id}: the resident's page, where the labels' QR codes point
    return app
