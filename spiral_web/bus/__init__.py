"""Fan-out of events to subscribers: in-process by default, Redis across workers and hosts."""

from ..engine.events import Event, Filters, sse_frame
from .memory import MemoryHub, SubscriberDropped, Subscription

__all__ = ["Event", "Filters", "MemoryHub", "Subscription", "SubscriberDropped", "sse_frame"]
