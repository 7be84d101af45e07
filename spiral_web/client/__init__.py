"""What outside modules import: `emit_glint`, a stream listener that reconnects and resumes, and
the `Agent` base class. No Flask here: this runs in other people's processes.

- `emit`: `emit_glint` and `SpiralError` (a refused request);
- `stream`: `Listener`, `listen` and the SSE parser they share;
- `agent`: the `Agent` base class, built on the two.
"""

from .agent import Agent
from .emit import DEFAULT_URL, SpiralError, emit_glint
from .stream import Listener, StatusCallback, StreamEvent, listen, parse_sse

__all__ = [
    "DEFAULT_URL",
    "Agent",
    "Listener",
    "SpiralError",
    "StatusCallback",
    "StreamEvent",
    "emit_glint",
    "listen",
    "parse_sse",
]
