"""What every console shares (the node's, the station's, the clearing house's): sign-in with
local accounts, sessions, CSRF, roles, the Content-Security-Policy, the language switch and
rendering in the viewer's language. A console is a `Shell` with its own routes and templates."""
from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import quote, urlencode

import aiohttp_jinja2
import jinja2
import orjson
from aiohttp import web

from ..protocol.errors import clip
from ..protocol.ids import id_problem
from . import auth, i18n

log = logging.getLogger("connector.console")
HERE = Path(__file__).parent
PREFIX = "/console"
SESSION_COOKIE = "hks_console"
LOGIN_COOKIE = "hks_console_login"
LANG_COOKIE = "hks_lang"
TZ_COOKIE = "hks_tz"
#: every console page: scripts and styles from the console's own static files only
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SESSION_KEY: web.AppKey[Any] = web.AppKey("console_session", object)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: a route: method, path under /console, handler, the role it needs
Route = tuple[str, str, Handler, str]


def N_(message: str) -> str:
    """Marks a message for the catalogs; translated where it is shown."""
    return message


#: what a viewer of the station's or the clearing house's console is told on an action
SERVICE_NOT_ALLOWED = N_("Your role (%(role)s) may view this service but not act on it: ask an administrator "
                         "for the operator role.")


class Shell:
    """Sign-in, sessions, CSRF, roles, headers and pages; subclasses give `routes()` and `base_context()`."""

    #: what a signed-in user whose role is too low is told (a msgid; %(role)s is the user's role)
    NOT_ALLOWED = N_("Your role (%(role)s) may view this node but not act on it: ask an administrator for the "
                     "operator role.")

    def __init__(self, accounts: auth.Accounts, *, secure_cookies: bool) -> None:
        self.accounts = accounts
        self.secure_cookies = secure_cookies
        self.stopping = asyncio.Event()
        self.throttle = auth.Throttle()

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def base_context(self) -> dict[str, Any]:
        """What every page of this console shows besides the shared context (its name, its footer)."""
        return {}

    def setup_templates(self, env: jinja2.Environment) -> None:
        """Filters this console's templates use."""

    # ------------------------------------------------------------------ wiring
    def mount(self, app: web.Application) -> None:
        env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                                   autoescape=jinja2.select_autoescape(default=True),
                                   extensions=["jinja2.ext.i18n"])
        env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
        env.filters["json"] = lambda value: orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
        self.setup_templates(env)
        p = PREFIX
        app.router.add_get(p, lambda request: web.HTTPFound(p + "/"))  # type: ignore[arg-type,return-value]
        app.router.add_get(p + "/login", self.login_form)
        app.router.add_post(p + "/login", self.login)
        app.router.add_post(p + "/logout", self.logout)
        app.router.add_get(p + "/language", self.language)
        app.router.add_static(p + "/static/", HERE / "static", append_version=False)
        for method, path, handler, role in self.routes():
            app.router.add_route(method, p + path, self.guard(handler, role, csrf=method == "POST"))
        app.on_response_prepare.append(self._headers)
        app.on_shutdown.append(self._shutdown)

    async def _shutdown(self, _app: web.Application) -> None:
        self.stopping.set()

    async def _headers(self, request: web.Request, response: web.StreamResponse) -> None:
        if request.path == PREFIX or request.path.startswith(PREFIX + "/"):
            response.headers["Content-Security-Policy"] = CSP
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["Referrer-Policy"] = "same-origin"
            response.headers["X-Frame-Options"] = "DENY"
            if not request.path.startswith(PREFIX + "/static/"):
                response.headers["Cache-Control"] = "no-store"

    def guard(self, handler: Handler, role: str, *, csrf: bool) -> Handler:
        """Signed in, with the role, and (for a state change) the session's CSRF token."""
        async def guarded(request: web.Request) -> web.StreamResponse:
            self._language(request)
            session = await self.accounts.load_session(request.cookies.get(SESSION_COOKIE))
            if session is None:
                if request.method == "GET" and not request.path.endswith("/events") and request.path != PREFIX + "/feed":
                    raise web.HTTPSeeOther(PREFIX + "/login?" + urlencode({"next": request.path_qs[:1000]}))
                return self.page(request, "message.html", {"title": i18n.gettext("Sign in first"),
                                 "message": i18n.gettext("Your session has ended. Sign in again.")}, status=401)
            request[SESSION_KEY] = session
            if csrf:
                form = await request.post()
                if not auth.same_token(form.get("csrf"), session.csrf):  # type: ignore[arg-type]
                    return self.page(request, "message.html", {
                        "title": i18n.gettext("Request refused"),
                        "message": i18n.gettext("This form was not sent from your current session (its security "
                                                "token is missing or out of date). Reload the page and try again.")},
                        status=403)
            if not session.may(role):
                return self.page(request, "message.html", {
                    "title": i18n.gettext("Not allowed"),
                    "message": i18n.gettext(self.NOT_ALLOWED) % {"role": role_name(session.role)}},
                    status=403)
            for name, value in request.match_info.items():
                problem = id_problem(value)
                if problem is not None:
                    return self.page(request, "message.html", {"title": i18n.gettext("Not found"),
                                     "message": i18n.gettext("That address names nothing here.")}, status=400)
            try:
                return await handler(request)
            except web.HTTPException:
                raise
            except Exception:
                log.exception("console: unhandled error on %s %s", request.method, request.path)
                return self.page(request, "message.html", {"title": i18n.gettext("Something went wrong"),
                                 "message": i18n.gettext("The node could not complete this request; the "
                                                         "details are in its log.")}, status=500)
        return guarded

    # ---------------------------------------------------------------- language
    def _language(self, request: web.Request) -> str:
        locale = i18n.choose(request.cookies.get(LANG_COOKIE), request.headers.get("Accept-Language"))
        i18n.activate(locale)
        request["locale"] = locale
        request["tz"] = i18n.zone(locale, request.cookies.get(TZ_COOKIE))
        return locale

    async def language(self, request: web.Request) -> web.StreamResponse:
        """The switch: a GET form (it changes only how pages look, nothing on the service)."""
        chosen = request.query.get("lang", "")
        response = web.HTTPSeeOther(_local_next(request.query.get("next")))
        if chosen in i18n.LANGUAGES:
            response.set_cookie(LANG_COOKIE, chosen, max_age=365 * 86400, path=PREFIX, httponly=True,
                                samesite="Lax", secure=self.secure_cookies)
        return response

    def page(self, request: web.Request, template: str, context: dict[str, Any], *, status: int = 200) -> web.Response:
        locale = request.get("locale") or self._language(request)
        session = request.get(SESSION_KEY)
        base = {
            "session": session, "csrf": session.csrf if session else "", "locale": locale,
            "lang_tag": i18n.LANGUAGES[locale][0], "languages": i18n.LANGUAGES, "path": request.path_qs,
            "when": lambda ts: i18n.format_time(ts, locale, request["tz"]),
            "size": lambda n: i18n.format_bytes(int(n or 0), locale),
            "role_name": role_name, "may_act": bool(session and session.may("operator")), "P": PREFIX,
            "quote": lambda s: quote(str(s), safe=""), **self.base_context(),
        }
        return aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)

    def not_found(self, request: web.Request) -> web.Response:
        return self.page(request, "message.html", {"title": i18n.gettext("Not found"),
                         "message": i18n.gettext("That address names nothing here.")}, status=404)

    # ------------------------------------------------------------------ sign-in
    async def login_form(self, request: web.Request, *, error: str = "", status: int = 200) -> web.Response:
        self._language(request)
        token = request.cookies.get(LOGIN_COOKIE) or ""
        if len(token) != 43:
            token = secrets.token_urlsafe(32)
        response = self.page(request, "login.html", {"login_csrf": token, "error": error,
                                                     "next": _local_next(request.query.get("next"))}, status=status)
        response.set_cookie(LOGIN_COOKIE, token, path=PREFIX, httponly=True, samesite="Strict",
                            secure=self.secure_cookies, max_age=3600)
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        self._language(request)
        form = await request.post()
        if not auth.same_token(form.get("csrf"), request.cookies.get(LOGIN_COOKIE)):  # type: ignore[arg-type]
            return await self.login_form(request, error=i18n.gettext(
                "The sign-in form was out of date. Try again."), status=403)
        username, password = str(form.get("username", ""))[:64], str(form.get("password", ""))
        if self.throttle.blocked(username):
            log.warning("console sign-in for %r refused: too many failed attempts", clip(username, 64))
            return await self.login_form(request, status=429, error=i18n.gettext(
                "Too many failed sign-ins for this user. Wait 15 minutes and try again."))
        role = await self.accounts.authenticate(username, password)
        if role is None:
            self.throttle.failed(username)
            log.info("console sign-in refused for %r", clip(username, 64))
            return await self.login_form(request, error=i18n.gettext("Wrong username or password."), status=401)
        self.throttle.succeeded(username)
        token, _csrf = await self.accounts.open_session(username)
        log.info("console sign-in: %s (%s)", username, role)
        response = web.HTTPSeeOther(_local_next(str(form.get("next", ""))))
        response.set_cookie(SESSION_COOKIE, token, path=PREFIX, httponly=True, samesite="Strict",
                            secure=self.secure_cookies, max_age=auth.SESSION_SECONDS)
        response.del_cookie(LOGIN_COOKIE, path=PREFIX)
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        session = await self.accounts.load_session(request.cookies.get(SESSION_COOKIE))
        form = await request.post()
        if session is not None and auth.same_token(form.get("csrf"), session.csrf):  # type: ignore[arg-type]
            await self.accounts.close_session(request.cookies.get(SESSION_COOKIE))
        response = web.HTTPSeeOther(PREFIX + "/login")
        response.del_cookie(SESSION_COOKIE, path=PREFIX)
        return response


def _local_next(value: str | None) -> str:
    """Where to go after sign-in or the language switch: a console page, never elsewhere."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//") and "\\" not in value \
            and len(value) <= 1000 and not any(ord(c) < 32 for c in value):
        return value
    return PREFIX + "/"


def role_name(role: str) -> str:
    return {"viewer": i18n.gettext("viewer"), "operator": i18n.gettext("operator"),
            "admin": i18n.gettext("administrator")}.get(role, role)
