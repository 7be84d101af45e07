"""Production gunicorn settings for Spiral: `gunicorn -c gunicorn.conf.py wsgi:app`.

The settings are spiral_web.server.gunicorn_settings, the same `spiral serve` uses. The address,
workers and log level come from Spiral's configuration: SPIRAL_HOST, SPIRAL_PORT (default
127.0.0.1:5056), SPIRAL_WORKERS (default 1; more than one needs SPIRAL_REDIS_URL),
SPIRAL_LOG_LEVEL, or the SPIRAL_CONFIG file's [spiral] table. gunicorn's own options (-b,
GUNICORN_CMD_ARGS) still win; the when_ready hook then checks the addresses really bound and stops
gunicorn if they reach beyond loopback with no publish tokens (see the README's Security section).
"""

from spiral_web.server import gunicorn_conf_settings

globals().update(gunicorn_conf_settings())  # gunicorn reads this module's names as its settings
