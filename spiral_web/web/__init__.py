"""HTTP blueprints: dashboard, stream (SSE), api, ops (health, metrics)."""
