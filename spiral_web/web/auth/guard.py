"""The guard: before every view, the request's origin, its CSRF token, and the role its view
declares (web/access.py). A view that declares nothing is refused."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from flask import current_app, g, redirect, request, url_for

from ..access import Access, declared
from ..common import address, count_rejection
from ..errors import ApiError, Forbidden, refuse
from ..htmx import is_htmx
from .csrf import check_csrf
from .identity import admin_refusal, authenticate, cross_origin, refusal
from .views import sign_in_page, sign_in_post

log = logging.getLogger(__name__)

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# What an HTML form (or a no-CORS fetch) on another site can send without a preflight.
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})


def guard() -> Any:
    """Refuse the request (raise, or answer for it) unless its view's declaration allows it."""
    endpoint = request.endpoint
    if endpoint is None:  # 404 or 405: nothing to guard
        return None
    access = declared(endpoint)
    if access is None:
        log.error("the view of %s declares no access (web/access.py): refused", endpoint)
        raise Forbidden("this route is closed: its view does not declare who may call it")
    unsafe = request.method in UNSAFE_METHODS
    authenticate()
    if (unsafe or access.stream == "websocket") and cross_origin():
        if unsafe or g.spiral_principal is None:
            raise cross_origin_refusal()
    if unsafe and _needs_csrf(access):
        try:
            check_csrf()
        except ApiError as exc:
            if current_app.view_functions[endpoint] is sign_in_post:  # the page says why
                count_rejection(address(), 403, exc.error)
                return sign_in_page(exc.message, 403)
            raise
    problem = _role_refusal(access)
    if problem is None:
        return None
    if problem.status == 401 and access.page:
        # A person at the dashboard: to the sign-in page, and back here (or to the page) after.
        if is_htmx():
            response = refuse(problem)
            response.headers["HX-Redirect"] = url_for(
                "auth.sign_in", next=url_for("dashboard.index")
            )
            return response
        back = _here() if request.method == "GET" else url_for("dashboard.index")
        count_rejection(address(), 401, problem.error)
        return redirect(url_for("auth.sign_in", next=back), 303)
    raise problem


def cross_origin_refusal() -> Forbidden:
    """The answer to a state-changing request from a page of another origin."""
    return Forbidden("requests from pages of another origin are refused", "cross_origin")


def _role_refusal(access: Access) -> ApiError | None:
    if access.role == "admin" and not access.token_field:
        return admin_refusal()  # asked for as such, so that a refusal names the admin token
    for role in roles_checked(access):
        problem = refusal(role)
        if problem is not None:
            return problem
    return None


def roles_checked(access: Access) -> tuple[str, ...]:
    """The roles a caller of a public, read or publish view must hold, in the order they are
    checked: read comes first for read and publish (publish is checked on top). An admin form
    that takes the token in a field is checked for read here, and for admin by its view."""
    if access.role == "public":
        return ()
    return ("read", "publish") if access.role == "publish" else ("read",)


def _needs_csrf(access: Access) -> bool:
    if "Authorization" in request.headers:
        return False  # cannot come from another site's page (a preflight we never grant)
    if access.json_only:
        return False  # refused with a 415 before the view acts, unless the body is JSON
    if request.mimetype in FORM_TYPES or access.page:
        return True  # a form, or a page's own endpoint: whatever the body, it needs the token
    who = g.spiral_principal
    return who is not None and who.via == "session" and request.mimetype != "application/json"


def _here() -> str:
    query = urlencode(list(request.args.items(multi=True)))
    return request.path + (f"?{query}" if query else "")
