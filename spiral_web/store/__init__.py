"""Durable storage for glints behind one small interface (SQLite by default)."""

from .sqlite import SQLiteStore

__all__ = ["SQLiteStore"]
