"""What `kito users create` does, kept out of the CLI module."""

from __future__ import annotations

from serving.core.auth import create_user
from serving.core.settings import load_settings
from serving.db.migrate import migrate
from serving.db.session import make_engine, make_sessionmaker


def create_user_with_token(*, name: str, role: str) -> tuple[int, str]:
    settings = load_settings()
    migrate(settings)
    engine = make_engine(settings.db_url)
    try:
        with make_sessionmaker(engine)() as session:
            user, token = create_user(session, name=name, role=role)
            return user.id, token
    finally:
        engine.dispose()
