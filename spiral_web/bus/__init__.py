"""Fan-out of events to subscribers (in-process by default, Redis across workers and hosts), how
each transport frames them, and what the workers of one hub share (the cluster)."""

from ..engine.events import Event, Filters
from ..engine.ports import SubscriberDropped
from .cluster import LocalCluster
from .frames import sse_frame
from .memory import MemoryHub, Subscription

__all__ = [
    "Event",
    "Filters",
    "LocalCluster",
    "MemoryHub",
    "Subscription",
    "SubscriberDropped",
    "sse_frame",
]
