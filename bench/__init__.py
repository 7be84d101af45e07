"""Spiral's benchmark suite: `make bench` runs every scenario, `python -m bench <scenario>` some.

Loopback only, every loop bounded in count and time. The server is started the way users start it
(the production command `gunicorn -c gunicorn.conf.py wsgi:app`, or `spiral serve` with
`--via serve`) and pinned to CPU 0; the load comes from a C client (bench/ssefan.c) pinned to CPU 1,
or, for the scenarios that need a stream to misbehave, from raw asyncio connections in this process
(bench/client.py). Each target is printed as a ratio against a bare reference (bench/bare.py) run
in the same invocation. BENCHMARKS.md records the results.
"""
