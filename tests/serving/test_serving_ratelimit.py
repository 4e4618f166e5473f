"""Token guessing: unknown tokens per client address are limited, then 429 with Retry-After."""

from __future__ import annotations

from fastapi.testclient import TestClient

from serving.core.ratelimit import FailedAuthLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_counts_a_sliding_minute_per_client() -> None:
    clock = Clock()
    limiter = FailedAuthLimiter(3, clock=clock)
    for _ in range(3):
        assert limiter.retry_after("a") is None
        limiter.failed("a")
        clock.now += 10
    assert limiter.retry_after("a") == 30  # the first failure leaves the window at +60 s
    assert limiter.retry_after("b") is None  # other clients are not affected
    clock.now += 30
    assert limiter.retry_after("a") is None


def test_limiter_memory_is_bounded() -> None:
    clock = Clock()
    limiter = FailedAuthLimiter(2, max_clients=100, clock=clock)
    for i in range(1000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._failures) <= 100
    assert limiter.retry_after("10.0.3.231") is None  # one failure, still remembered
    limiter.failed("10.0.3.231")
    assert limiter.retry_after("10.0.3.231") == 60


def test_guessing_tokens_gets_429_then_recovers(make_client, make_user) -> None:
    client: TestClient = make_client(auth_failures_per_minute=5)
    _, good = make_user()
    clock = Clock()
    limiter = FailedAuthLimiter(5, clock=clock)
    client.app.state.auth_limiter = limiter  # type: ignore[attr-defined]
    for i in range(5):
        r = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer kito_guess{i}"})
        assert r.status_code == 401
    r = client.get("/api/v1/users/me", headers={"Authorization": "Bearer kito_guess6"})
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "too_many_failed_tokens"
    assert r.headers["retry-after"] == "60"
    # Blocked means blocked: a guess that happens to be right learns nothing either.
    assert client.get("/api/v1/users/me", headers=good).status_code == 429
    # Requests that need no token are not affected; missing tokens are not guesses.
    assert client.get("/healthz").status_code == 200
    clock.now += 61
    assert client.get("/api/v1/users/me", headers=good).status_code == 200


def test_missing_tokens_do_not_count(make_client) -> None:
    client: TestClient = make_client(auth_failures_per_minute=2)
    for _ in range(10):
        assert client.get("/api/v1/users/me").status_code == 401
    assert client.get("/api/v1/users/me", headers={"Authorization": "Bearer x"}).status_code == 401


def test_other_addresses_are_not_blocked(settings, inspector, make_user) -> None:
    from serving.app import create_app
    from serving.inspection.pipeline import InspectorStatus

    s = settings.model_copy(update={"auth_failures_per_minute": 2})
    app = create_app(s, inspector_status=InspectorStatus(inspector, "fake"))
    with (
        TestClient(app, client=("203.0.113.7", 4000)) as guesser,
        TestClient(app, client=("198.51.100.2", 4000)) as artisan,
    ):
        bad = {"Authorization": "Bearer kito_nope"}
        assert [guesser.get("/api/v1/users/me", headers=bad).status_code for _ in range(3)] == [
            401,
            401,
            429,
        ]
        assert artisan.get("/api/v1/users/me", headers=bad).status_code == 401
