"""Fan-out of events to subscribers (in-process by default, Redis across workers and hosts), and
what the workers of one hub share (the cluster)."""

from ..engine.events import Event, Filters, sse_frame
from .cluster import LocalCluster
from .memory import MemoryHub, SubscriberDropped, Subscription

__all__ = [
    "Event",
    "Filters",
    "LocalCluster",
    "MemoryHub",
    "Subscription",
    "SubscriberDropped",
    "sse_frame",
]
