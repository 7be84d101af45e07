"""Fan-out of events to subscribers: in-process by default, Redis across workers and hosts."""

from .memory import Event, Filters, MemoryHub, Subscription, SubscriberDropped

__all__ = ["Event", "Filters", "MemoryHub", "Subscription", "SubscriberDropped"]
