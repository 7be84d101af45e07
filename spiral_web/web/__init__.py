"""The web layer: blueprints for HTTP, SSE and WebSocket over the engine (docs/web-layout.md)."""
