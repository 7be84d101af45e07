"""Many workers and hosts as one hub, through Redis.

`RedisHub` carries events between processes over pub/sub; the record (SQLite or PostgreSQL) stays
the source of truth. Every worker delivers events to its own subscribers strictly in seq order:
seqs become visible in seq order (engine/ports.py), so when seq N arrives every seq below N is
already committed, and a gap (a message lost while Redis was away, a worker killed between commit
and publish) is filled from the record before N is delivered. A look at the record's top seq about
once a second bounds the delay a lost last message can cause. Events without a seq (the breath)
are computed by every worker alike and never cross Redis.

`RedisCluster` is what the workers share: listener counts, claims, cooldowns, windows and token
buckets (each one atomic in Redis, with Lua where it reads and writes), and control messages.

`RedisMark` is the joined hub's seq mark (ports.SeqMark): the highest seq any worker published,
raised before each publish, so that a record restored from a backup (or a database failover that
lost the last commits) is found out by every worker (store/marks.py explains the mark).
"""

from .cluster import RedisCluster
from .hub import RedisHub
from .mark import RedisMark

__all__ = ["RedisCluster", "RedisHub", "RedisMark"]
