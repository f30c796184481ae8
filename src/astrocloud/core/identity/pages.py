"""Browser pages of accounts: sign-up, sign-in, verification, password reset, the account page,
API tokens and groups. Forms re-render with every problem listed when input is not valid."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import RedirectResponse

from astrocloud.core.errors import DomainError, ValidationFailed
from astrocloud.core.i18n import gettext
from astrocloud.core.identity import services
from astrocloud.core.identity.operations import IdentityOps as Ops
from astrocloud.core.service import Context
from astrocloud.core.web.context import AuditedRoute, request_context
from astrocloud.core.web.inputs import FormText
from astrocloud.core.web.routing import PUBLIC, Id, uses
from astrocloud.core.web.templating import render

pages = APIRouter(include_in_schema=False, route_class=AuditedRoute)
Ctx = Annotated[Context, Depends(request_context)]
Text = FormText
OptText = FormText


def safe_next(target: str | None) -> str:
    """Only local paths are followed after sign-in (no open redirects)."""
    if not target:
        return "/dashboard"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return "/dashboard"
    return target


def field_errors(exc: ValidationFailed) -> dict[str, list[str]]:
    """A form's problems by field, in the page's language."""
    from astrocloud.core.web.context import current_language

    out: dict[str, list[str]] = {}
    for e in exc.localized(current_language.get()):
        out.setdefault(e.get("field") or "", []).append(e["message"])
    return out


def flash_redirect(url: str, message: str | None = None) -> RedirectResponse:
    if message:
        sep = "&" if "?" in url else "?"
        from urllib.parse import quote

        url = f"{url}{sep}notice={quote(message)}"
    return RedirectResponse(url, status_code=303)


def set_session_cookie(request: Request, response, token: str) -> None:
    settings = request.app.state.settings
    response.set_cookie(settings.session_cookie, token, max_age=settings.session_max_age_seconds,
                        httponly=True, samesite="lax", secure=settings.cookie_secure, path="/")


# ---- sign-in / sign-out -----------------------------------------------------------------------


@pages.get("/login", openapi_extra=PUBLIC)
def login_form(request: Request, ctx: Ctx,
               next: Annotated[str | None, Query(max_length=2000)] = None):
    if ctx.subject.authenticated:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "account/login.html", next=safe_next(next),
                  providers=request.app.state.settings.oidc_providers)


@pages.post("/login", openapi_extra=uses(Ops.LOGIN))
def login(request: Request, ctx: Ctx, username: Text = "", password: Text = "",
          next: OptText = "/dashboard"):
    try:
        _user, token = services.login(ctx, username=username, password=password,
                                      user_agent=request.headers.get("user-agent", ""))
    except DomainError as exc:
        return render(request, "account/login.html", status_code=exc.status,
                      error=exc.translated(ctx.language),
                      username=username, next=safe_next(next), code=exc.code,
                      providers=request.app.state.settings.oidc_providers)
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(request, response, token)
    return response


@pages.post("/logout", openapi_extra=uses(Ops.LOGOUT))
def logout(request: Request, ctx: Ctx):
    settings = request.app.state.settings
    services.logout(ctx, session_token=request.cookies.get(settings.session_cookie))
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(settings.session_cookie, path="/")
    return response


# ---- sign-up and verification -----------------------------------------------------------------


@pages.get("/signup", openapi_extra=PUBLIC)
def signup_form(request: Request, ctx: Ctx):
    if ctx.subject.authenticated:
        return RedirectResponse("/dashboard", status_code=303)
    return render(request, "account/signup.html", form={}, errors={})


@pages.post("/signup", openapi_extra=uses(Ops.REGISTER))
def signup(request: Request, ctx: Ctx, username: Text = "", email: Text = "", password: Text = "",
           display_name: OptText = "", institute: OptText = ""):
    form = {"username": username, "email": email, "display_name": display_name,
            "institute": institute}
    try:
        user = services.register(ctx, username=username, email=email, password=password,
                                 display_name=display_name, institute=institute,
                                 language=ctx.language)
    except ValidationFailed as exc:
        return render(request, "account/signup.html", status_code=422, form=form,
                      errors=field_errors(exc))
    return render(request, "account/message.html", title=gettext(ctx.language, "Check your mail"),
                  message=gettext(ctx.language, "We sent a link to %(email)s. Open it to confirm "
                                  "your address, then sign in.", email=user.email))


@pages.get("/account/verify", openapi_extra=uses(Ops.VERIFY_EMAIL))
def verify(request: Request, ctx: Ctx, token: Annotated[str, Query(max_length=200)] = ""):
    try:
        user = services.verify_email(ctx, token=token)
    except ValidationFailed as exc:
        return render(request, "account/message.html", status_code=400,
                      title=gettext(ctx.language, "This link does not work"),
                      message=exc.translated(ctx.language), resend=True)
    return render(request, "account/message.html",
                  title=gettext(ctx.language, "Address confirmed"),
                  message=gettext(ctx.language, "Thank you, %(name)s. Your address is confirmed: "
                                  "you can sign in now.", name=user.name), login=True)


@pages.get("/account/resend", openapi_extra=PUBLIC)
def resend_form(request: Request, ctx: Ctx):
    return render(request, "account/email_form.html", action="/account/resend",
                  title=gettext(ctx.language, "Send the confirmation link again"), errors={})


@pages.post("/account/resend", openapi_extra=uses(Ops.RESEND_VERIFICATION))
def resend(request: Request, ctx: Ctx, email: Text = ""):
    try:
        services.resend_verification(ctx, email=email)
    except ValidationFailed as exc:
        return render(request, "account/email_form.html", status_code=422,
                      action="/account/resend", email=email, errors=field_errors(exc),
                      title=gettext(ctx.language, "Send the confirmation link again"))
    return render(request, "account/message.html", title=gettext(ctx.language, "Check your mail"),
                  message=gettext(ctx.language, "If an unconfirmed account has this address, a "
                                  "new link is on its way."))


@pages.get("/account/forgot", openapi_extra=PUBLIC)
def forgot_form(request: Request, ctx: Ctx):
    return render(request, "account/email_form.html", action="/account/forgot",
                  title=gettext(ctx.language, "Reset your password"), errors={})


@pages.post("/account/forgot", openapi_extra=uses(Ops.REQUEST_PASSWORD_RESET))
def forgot(request: Request, ctx: Ctx, email: Text = ""):
    try:
        services.request_password_reset(ctx, email=email)
    except ValidationFailed as exc:
        return render(request, "account/email_form.html", status_code=422,
                      action="/account/forgot", email=email, errors=field_errors(exc),
                      title=gettext(ctx.language, "Reset your password"))
    return render(request, "account/message.html", title=gettext(ctx.language, "Check your mail"),
                  message=gettext(ctx.language, "If an account has this address, a reset link "
                                  "is on its way."))


@pages.get("/account/reset", openapi_extra=PUBLIC)
def reset_form(request: Request, ctx: Ctx, token: Annotated[str, Query(max_length=200)] = ""):
    return render(request, "account/reset.html", token=token, errors={})


@pages.post("/account/reset", openapi_extra=uses(Ops.RESET_PASSWORD))
def reset(request: Request, ctx: Ctx, token: Text = "", password: Text = ""):
    try:
        services.reset_password(ctx, token=token, password=password)
    except ValidationFailed as exc:
        return render(request, "account/reset.html", status_code=422, token=token,
                      errors=field_errors(exc))
    return render(request, "account/message.html",
                  title=gettext(ctx.language, "Password changed"),
                  message=gettext(ctx.language, "Your new password is set. Sign in with it."),
                  login=True)


# ---- own account and tokens -------------------------------------------------------------------


@pages.get("/account", openapi_extra=uses(Ops.ME_READ, Ops.TOKEN_LIST))
def account(request: Request, ctx: Ctx,
            notice: Annotated[str | None, Query(max_length=300)] = None):
    user = services.me(ctx)
    tokens = services.list_tokens(ctx)
    return render(request, "account/account.html", me=user, tokens=tokens, errors={},
                  notice=notice)


def _account_with_errors(request: Request, ctx: Ctx, exc: ValidationFailed, **extra):
    user = services.me(ctx)
    tokens = services.list_tokens(ctx)
    return render(request, "account/account.html", status_code=422, me=user, tokens=tokens,
                  errors=field_errors(exc), **extra)


@pages.post("/account/profile", openapi_extra=uses(Ops.ME_UPDATE))
def update_profile(request: Request, ctx: Ctx, display_name: OptText = "",
                   institute: OptText = "", language: OptText = ""):
    try:
        services.update_me(ctx, display_name=display_name, institute=institute,
                           language=language or None)
    except ValidationFailed as exc:
        return _account_with_errors(request, ctx, exc)
    response = flash_redirect("/account", gettext(ctx.language, "Your profile is saved."))
    if language:
        from astrocloud.core.i18n import LANGUAGE_COOKIE, normalise

        response.set_cookie(LANGUAGE_COOKIE, normalise(language) or "en", samesite="lax",
                            max_age=31536000, path="/")
    return response


@pages.post("/account/password", openapi_extra=uses(Ops.ME_UPDATE))
def change_password(request: Request, ctx: Ctx, current_password: OptText = "",
                    new_password: OptText = ""):
    try:
        services.update_me(ctx, current_password=current_password, new_password=new_password)
    except ValidationFailed as exc:
        return _account_with_errors(request, ctx, exc)
    return flash_redirect("/account", gettext(ctx.language, "Your password is changed."))


@pages.post("/account/tokens", openapi_extra=uses(Ops.TOKEN_CREATE))
def create_token(request: Request, ctx: Ctx, name: OptText = "", expires_days: OptText = ""):
    try:
        days = int(expires_days) if expires_days.strip() else None
    except ValueError:
        days = -1
    try:
        token, raw = services.create_token(ctx, name=name, expires_days=days)
    except ValidationFailed as exc:
        return _account_with_errors(request, ctx, exc)
    user = services.me(ctx)
    return render(request, "account/account.html", me=user, tokens=services.list_tokens(ctx),
                  errors={}, new_token=raw, new_token_name=token.name)


@pages.post("/account/tokens/{token_id}/revoke", openapi_extra=uses(Ops.TOKEN_REVOKE))
def revoke_token(request: Request, ctx: Ctx, token_id: Id):
    services.revoke_token(ctx, token_id=token_id)
    return flash_redirect("/account", gettext(ctx.language, "The token is revoked."))


# ---- groups -----------------------------------------------------------------------------------


@pages.get("/groups", openapi_extra=uses(Ops.GROUP_LIST))
def groups(request: Request, ctx: Ctx, q: Annotated[str | None, Query(max_length=100)] = None,
           page: Annotated[int, Query(ge=1, le=100000)] = 1):
    result = services.list_groups(ctx, q=q, page=page, per_page=25)
    return render(request, "account/groups.html", result=result, q=q or "", form={}, errors={},
                  can_create=ctx.can(Ops.GROUP_CREATE))


@pages.post("/groups", openapi_extra=uses(Ops.GROUP_CREATE))
def create_group(request: Request, ctx: Ctx, name: Text = "", title: Text = "",
                 description: OptText = "", kind: OptText = "collaboration"):
    try:
        group = services.create_group(ctx, name=name, title=title, description=description,
                                      kind=kind)
    except ValidationFailed as exc:
        result = services.list_groups(ctx, page=1, per_page=25)
        return render(request, "account/groups.html", status_code=422, result=result, q="",
                      form={"name": name, "title": title, "description": description,
                            "kind": kind}, errors=field_errors(exc), can_create=True)
    return flash_redirect(f"/groups/{group.id}", gettext(ctx.language, "The group is created."))


@pages.get("/groups/{group_id}", openapi_extra=uses(Ops.GROUP_LIST))
def group_page(request: Request, ctx: Ctx, group_id: Id,
               notice: Annotated[str | None, Query(max_length=300)] = None):
    group = services.get_group(ctx, group_id=group_id)
    return render(request, "account/group.html", group=group, notice=notice,
                  can_manage=ctx.can(Ops.GROUP_MANAGE_MEMBERS, group),
                  can_edit=ctx.can(Ops.GROUP_UPDATE, group), errors={})


@pages.post("/groups/{group_id}/members", openapi_extra=uses(Ops.GROUP_MANAGE_MEMBERS))
def add_member(request: Request, ctx: Ctx, group_id: Id, username: Text = "",
               manager: OptText = ""):
    try:
        services.add_member(ctx, group_id=group_id, username=username, manager=bool(manager))
    except ValidationFailed as exc:
        group = services.get_group(ctx, group_id=group_id)
        return render(request, "account/group.html", status_code=422, group=group,
                      can_manage=True, can_edit=ctx.can(Ops.GROUP_UPDATE, group),
                      errors=field_errors(exc), username=username)
    return flash_redirect(f"/groups/{group_id}", gettext(ctx.language, "The member is added."))


@pages.post("/groups/{group_id}/members/{user_id}/remove",
            openapi_extra=uses(Ops.GROUP_MANAGE_MEMBERS))
def remove_member(request: Request, ctx: Ctx, group_id: Id, user_id: Id):
    services.remove_member(ctx, group_id=group_id, user_id=user_id)
    return flash_redirect(f"/groups/{group_id}", gettext(ctx.language, "The member is removed."))


@pages.post("/groups/{group_id}/edit", openapi_extra=uses(Ops.GROUP_UPDATE))
def edit_group(request: Request, ctx: Ctx, group_id: Id, title: Text = "",
               description: OptText = ""):
    try:
        services.update_group(ctx, group_id=group_id, title=title, description=description)
    except ValidationFailed as exc:
        group = services.get_group(ctx, group_id=group_id)
        return render(request, "account/group.html", status_code=422, group=group,
                      can_manage=ctx.can(Ops.GROUP_MANAGE_MEMBERS, group), can_edit=True,
                      errors=field_errors(exc))
    return flash_redirect(f"/groups/{group_id}", gettext(ctx.language, "The group is saved."))
