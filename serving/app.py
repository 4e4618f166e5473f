"""The FastAPI app: `create_app(settings)` migrates, loads catalog and the registry's champion,
wires routes. Without an explicit `inspector_status` (tests pass one) the model comes from the
registry and is hot-swapped when the registry changes (serving.registry.live_models)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from qc_model.catalog import load_catalog
from qc_model.decode import MB, DecodeBudget
from qc_model.errors import DataError
from serving.catalog import designs_routes as designs
from serving.catalog import taxonomy_routes as taxonomy
from serving.core import audit_routes as audit
from serving.core import health_routes as health
from serving.core import users_routes as users
from serving.core.auth import user_for_token
from serving.core.errors import COMMON_RESPONSES, install_error_handlers
from serving.core.guards import UrlGuardMiddleware
from serving.core.headers import SecurityHeadersMiddleware
from serving.core.limits import (
    BodyDeadlineMiddleware,
    BodyLimitMiddleware,
    spool_uploads_in_memory,
)
from serving.core.metrics import Metrics, MetricsMiddleware
from serving.core.ratelimit import FailedAuthLimiter
from serving.core.settings import Settings, load_settings
from serving.db.migrate import migrate
from serving.db.session import make_engine, make_sessionmaker
from serving.inspection import routes as inspections
from serving.inspection.admission import AdmissionMiddleware, InspectSlots
from serving.inspection.pipeline import InspectorStatus
from serving.orders import routes as orders
from serving.orders.outbox import Dispatcher, DispatcherThread
from serving.orders.workflow import Workflow
from serving.registry import routes as models
from serving.registry.live_models import LiveModels, PackageLoader, RegistryWatcher
from serving.registry.shadow import ShadowRunner
from serving.review import matches_routes as photo_matches
from serving.review import routes as reviews
from serving.store.orphans import OrphanSweeper
from serving.store.storage import LocalObjectStore, StorageError
from serving.store.stores import package_store, photo_store
from serving.web.routes import mount_web

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
    store = photo_store(settings)
    try:
        store.check()
    except StorageError as exc:
        raise DataError(str(exc)) from None
    if isinstance(store, LocalObjectStore):  # an S3 put is atomic: nothing half-written
        for path in store.sweep_interrupted():
            log.warning("deleted %s, left by a photo write that was killed", path)
    catalog = load_catalog(settings.catalog_dir)
    engine = make_engine(settings.db_url, connect_timeout_s=settings.db_connect_timeout_s)
    sessions = make_sessionmaker(engine)
    packages = package_store(settings)
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
    spool_uploads_in_memory(settings.max_photo_bytes + 1)
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
    for module in (
        health,
        users,
        photo_matches,
        designs,
        inspections,
        orders,
        reviews,
        audit,
        models,
        taxonomy,
    ):
        app.include_router(module.router)
    mount_web(app)
    return app
