"""Database layer: SQLAlchemy 2 models, engine and session, Alembic migrations runner."""
