"""Security headers: `nosniff` on every response, a strict Content-Security-Policy on the pages.

The pages show text that users typed (names, QC notes); they insert it as text, and the policy
is the second wall: no inline script, no script from anywhere but this origin, so a string that
slipped into the HTML would still not run. /docs keeps FastAPI's Swagger page, which needs an
inline script and a CDN, so the policy covers only the pages and their assets.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        # blob: photos and heatmaps are fetched with the bearer token and shown as object URLs.
        "img-src 'self' blob:",
        "connect-src 'self'",
        # The artisan page is installable and opens offline: its manifest and service worker.
        "manifest-src 'self'",
        "worker-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
PAGES = ("/app", "/qc")


class SecurityHeadersMiddleware:
    """Pure ASGI, like the other middlewares here, so it also covers error responses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        page = path in PAGES or path.startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                if page:
                    headers += [
                        (b"content-security-policy", CSP.encode()),
                        (b"referrer-policy", b"no-referrer"),
                        (b"x-frame-options", b"DENY"),
                    ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
