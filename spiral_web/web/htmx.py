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


def _vary(response: Response) -> Response:
    response.vary.add("HX-Request")
    return response
