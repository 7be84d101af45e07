"""htmx requests: a view that answers htmx with a partial and a browser with a page asks here."""

from __future__ import annotations

from flask import Response, after_this_request, g, request


def is_htmx() -> bool:
    """Whether htmx sent this request. The response then says it varies by HX-Request, whichever
    way it went, so a cache never hands a partial to a browser or a whole page to htmx."""
    if not g.get("spiral_varies_by_htmx"):
        g.spiral_varies_by_htmx = True
        after_this_request(_vary)
    return bool(request.headers.get("HX-Request"))


def panel(html: str, status: int) -> Response:
    """A form's panel for htmx. A refusal the form expects (invalid input, a wrong token, input
    paused) is part of the page's normal life, so it comes as 200 with the real status in
    `X-Spiral-Status`: a browser logs every 4xx fetch as an error in its console, and an expected
    state is not an error. The panel itself says what happened."""
    if 400 <= status < 500:
        return Response(html, 200, {"X-Spiral-Status": str(status)}, mimetype="text/html")
    return Response(html, status, mimetype="text/html")


def _vary(response: Response) -> Response:
    response.vary.add("HX-Request")
    return response
