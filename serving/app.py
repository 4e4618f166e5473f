"""The FastAPI app: `create_app(settings)` migrates, loads catalog and the registry's champion,
wires routes. Without an explicit `inspector_status` (tests pass one) the model comes from the
registry and is hot-swapped when the registry changes (serving.live_models)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from qc_model.catalog import load_catalog
from qc_model.decode import MB, DecodeBudget
from qc_model.errors import DataError
from serving.admission import AdmissionMiddleware, InspectSlots
from serving.auth import user_for_token
from serving.db.cli import migrate
from serving.db.session import make_engine, make_sessionmaker
from serving.errors import COMMON_RESPONSES, install_error_handlers
from serving.guards import UrlGuardMiddleware
from serving.headers import SecurityHeadersMiddleware
from serving.limits import BodyDeadlineMiddleware, BodyLimitMiddleware
from serving.live_models import LiveModels, PackageLoader, RegistryWatcher
from serving.metrics import Metrics, MetricsMiddleware
from serving.orphans import OrphanSweeper
from serving.outbox import Dispatcher, DispatcherThread
from serving.pipeline import InspectorStatus
from serving.ratelimit import FailedAuthLimiter
from serving.routers import (
    audit,
    designs,
    health,
    inspections,
    models,
    orders,
    reviews,
    taxonomy,
    users,
)
from serving.routers.web import mount_web
from serving.settings import Settings, load_settings
from serving.shadow import ShadowRunner
from serving.storage import LocalObjectStore, StorageError
from serving.workflow import Workflow

log = logging.getLogger("kito.serving")
# Multipart overhead (boundaries, form fields) on top of the photos themselves.
_BODY_SLACK = 256 * 1024


def create_app(
    settings: Settings | None = None, *, inspector_status: InspectorStatus | None = None
) -> FastAPI:
    """Build the app. Raises `DataError` (one line, names the problem) if it cannot start."""
    settings = settings or load_settings()
    if settings.migrate_on_start:
        migrate(settings)
    store = LocalObjectStore(settings.photos_path)
    try:
        store.check()
    except StorageError as exc:
        raise DataError(str(exc)) from None
    for path in store.sweep_interrupted():
        log.warning("deleted %s, left by a photo write that was killed", path)
    catalog = load_catalog(settings.catalog_dir)
    engine = make_engine(settings.db_url, connect_timeout_s=settings.db_connect_timeout_s)
    sessions = make_sessionmaker(engine)
    packages = LocalObjectStore(settings.package_store_path)
    loader = PackageLoader(
        packages,
        settings.model_cache_path,
        settings.threshold_overrides,
        settings.decode_long_side,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dispatcher = None
        if settings.payout_webhook_url:
            # Payouts leave through the outbox; `kito payouts dispatch` may run beside it.
            dispatcher = DispatcherThread(
                Dispatcher.from_settings(app.state.sessionmaker, settings), settings.payout_poll_s
            )
            dispatcher.start()
        app.state.payout_dispatcher = dispatcher
        sweeper = OrphanSweeper(
            app.state.sessionmaker,
            store,
            every_s=settings.orphan_sweep_s,
            min_age_s=settings.orphan_min_age_s,
        )
        sweeper.start()
        app.state.orphan_sweeper = sweeper
        watcher = None
        if live is not None:
            watcher = RegistryWatcher(live, settings.registry_poll_s)
            watcher.start()
        try:
            yield
        finally:
            if watcher is not None:
                watcher.close()
            shadow_runner.close()
            sweeper.close()
            if dispatcher is not None:
                dispatcher.close()
            engine.dispose()

    app = FastAPI(
        title="Kito QC inspection service",
        version="1",
        lifespan=lifespan,
        responses=COMMON_RESPONSES,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = sessions
    app.state.store = store
    app.state.catalog = catalog
    app.state.package_loader = loader
    live = None
    if inspector_status is None:
        app.state.inspector_status = InspectorStatus(None, "model registry not read yet")
        live = LiveModels(
            sessions,
            loader,
            publish=lambda status: setattr(app.state, "inspector_status", status),
            bundled=settings.model_dir,
        )
        live.sync(start=True)
    else:
        app.state.inspector_status = inspector_status
    log.info("inspector: %s", app.state.inspector_status.reason)
    app.state.models = live
    shadow_runner = ShadowRunner(sessions)
    app.state.shadow_runner = shadow_runner
    app.state.metrics = Metrics()
    app.state.cpu_slots = InspectSlots(
        settings.inspect_concurrency, settings.inspect_queue, settings.inspect_queue_timeout_s
    )
    app.state.decode_budget = DecodeBudget(
        settings.decode_budget_mb * MB, wait_s=settings.inspect_queue_timeout_s
    )
    app.state.auth_limiter = FailedAuthLimiter(settings.auth_failures_per_minute)
    app.state.workflow = Workflow.from_settings(settings)
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    max_body = settings.max_photos * settings.max_photo_bytes + _BODY_SLACK
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body)
    app.add_middleware(BodyDeadlineMiddleware, timeout_s=settings.body_timeout_s)

    def authenticate(token: str) -> bool:
        with sessions() as session:
            return user_for_token(session, token) is not None

    app.add_middleware(
        AdmissionMiddleware,
        slots=app.state.cpu_slots,
        path=inspections.router.prefix,
        authenticate=authenticate,
        limiter=app.state.auth_limiter,
        per_token=settings.uploads_per_token,
        per_address=settings.uploads_per_address,
    )
    app.add_middleware(UrlGuardMiddleware)
    # Outermost, so that even the guards' own refusals carry the headers.
    app.add_middleware(SecurityHeadersMiddleware)
    for module in (health, users, designs, inspections, orders, reviews, audit, models, taxonomy):
        app.include_router(module.router)
    mount_web(app)
    return app
