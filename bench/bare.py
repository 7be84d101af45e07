"""The reference point: a bare Flask POST endpoint under the same gunicorn gevent worker.

It reads the JSON body and answers a small JSON object, and does nothing else: no validation, no
store, no broadcast. Spiral's ingest rate is compared against it."""

import orjson
from flask import Flask, Response, request

app = Flask(__name__)


@app.post("/stream/glint")
def glint():
    body = orjson.loads(request.get_data(cache=False))
    return Response(
        orjson.dumps({"status": "ok", "module": body.get("module")}),
        status=201,
        mimetype="application/json",
    )


@app.get("/ping")
def ping():
    return "ok"


def wsgi(environ, start_response):
    """The same endpoint without Flask: what the framework itself costs per request."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = orjson.loads(environ["wsgi.input"].read(length)) if length else {}
    if environ["PATH_INFO"] == "/ping":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]
    out = orjson.dumps({"status": "ok", "module": body.get("module")})
    start_response(
        "201 Created", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))]
    )
    return [out]
