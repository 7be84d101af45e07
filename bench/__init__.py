"""Spiral's benchmark suite: `make bench` runs every scenario, `python -m bench <scenario>` one.

Loopback only, every loop bounded in count and time. The server is started the way users start it
(the production command `gunicorn -c gunicorn.conf.py wsgi:app`, or `spiral serve` with
`--via serve`), the load comes from raw asyncio connections speaking HTTP/1.1, and the results are
printed as a table. BENCHMARKS.md records them.
"""
