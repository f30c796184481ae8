"""Account services: sign-up, verification, sign-in, password reset, tokens, users and groups.

Each public function is one operation (named in its decorator) and one unit of work.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.orm import selectinload

from astrocloud.core import mail
from astrocloud.core.db import Database, utcnow
from astrocloud.core.errors import (
    Conflict,
    DomainError,
    NotAuthenticated,
    NotFound,
    TooManyRequests,
    ValidationFailed,
)
from astrocloud.core.i18n import LANGUAGES, _, gettext, normalise
from astrocloud.core.identity.models import (
    ApiToken,
    EmailToken,
    ExternalIdentity,
    Group,
    GroupMember,
    LoginAttempt,
    User,
    WebSession,
)
from astrocloud.core.identity.operations import IdentityOps as Ops
from astrocloud.core.identity.secrets import (
    hash_password,
    hasher,
    new_token,
    token_hash,
    verify_password,
)
from astrocloud.core.security.models import Role, RoleAssignment
from astrocloud.core.service import Context, Page, operation, paginate

USERNAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{2,31}$")
GROUP_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,63}$")
DEFAULT_ROLE = "astronomer"
MAX_PASSWORD = 256


class AccountNotVerified(DomainError):
    status = 403
    code = "email-not-verified"
    title = _("E-mail address not confirmed")


# ---- validation helpers -----------------------------------------------------------------------


def _password_problems(ctx: Context, password: str, username: str = "") -> list[str]:
    problems = []
    if not isinstance(password, str) or len(password) < ctx.settings.password_min_length:
        problems.append(
            gettext(ctx.language, "Use at least %(n)s characters.",
                    n=ctx.settings.password_min_length)
        )
    elif len(password) > MAX_PASSWORD:
        problems.append(gettext(ctx.language, "Use at most %(n)s characters.", n=MAX_PASSWORD))
    elif username and password.lower() == username.lower():
        problems.append(gettext(ctx.language, "The password must not be your user name."))
    return problems


def _normalise_email(ctx: Context, email: str, errors: list[dict]) -> str:
    try:
        return validate_email(email or "", check_deliverability=False,
                              globally_deliverable=False).normalized.lower()
    except EmailNotValidError:
        errors.append({"field": "email",
                       "message": gettext(ctx.language, "This is not a valid e-mail address.")})
        return ""


def _hasher(ctx: Context):
    return hasher(ctx.settings.argon2_time_cost, ctx.settings.argon2_memory_cost_kib)


def _issue_email_token(ctx: Context, user: User, purpose: str, hours: int) -> str:
    raw = new_token()
    ctx.db.add(EmailToken(user_id=user.id, purpose=purpose, token_hash=token_hash(raw),
                          expires_at=utcnow() + dt.timedelta(hours=hours)))
    return raw


def _mail_after_commit(ctx: Context, to: str, subject: str, body: str) -> None:
    settings = ctx.settings
    ctx.after_commit(lambda: mail.send_mail(settings, to, subject, body))


def _link(ctx: Context, path: str) -> str:
    return ctx.settings.base_url.rstrip("/") + path


def _send_verification(ctx: Context, user: User) -> None:
    raw = _issue_email_token(ctx, user, "verify", ctx.settings.verification_token_hours)
    lang = user.language or ctx.language
    body = gettext(
        lang,
        "Hello %(name)s,\n\nplease confirm your e-mail address for %(site)s by opening this "
        "link:\n\n%(link)s\n\nThe link is valid for %(hours)s hours. If you did not sign up, "
        "ignore this message.\n",
        name=user.name, site=ctx.settings.site_name,
        link=_link(ctx, f"/account/verify?token={raw}"),
        hours=ctx.settings.verification_token_hours,
    )
    _mail_after_commit(ctx, user.email,
                       gettext(lang, "Confirm your e-mail address for %(site)s",
                               site=ctx.settings.site_name), body)


def assign_role(ctx: Context, user: User, role_name: str, scope_type: str = "",
                scope_id: int = 0) -> RoleAssignment:
    """Give `user` a role (used inside operations that have already been authorized)."""
    role = ctx.db.scalar(sa.select(Role).where(Role.name == role_name))
    if role is None:
        raise ValidationFailed("There is no role called “%(role)s”.", field="role", role=role_name)
    existing = ctx.db.scalar(sa.select(RoleAssignment).where(
        RoleAssignment.user_id == user.id, RoleAssignment.role_id == role.id,
        RoleAssignment.scope_type == scope_type, RoleAssignment.scope_id == scope_id))
    if existing:
        return existing
    assignment = RoleAssignment(user_id=user.id, role_id=role.id, scope_type=scope_type,
                                scope_id=scope_id, created_by_id=ctx.subject.id)
    ctx.db.add(assignment)
    return assignment


def _new_user(ctx: Context, *, username: str, email: str, password: str | None,
              display_name: str = "", institute: str = "", language: str | None = None,
              verified: bool = False, role: str = DEFAULT_ROLE, service: bool = False) -> User:
    errors: list[dict] = []
    username = (username or "").strip().lower()
    if not USERNAME_RE.match(username):
        errors.append({"field": "username", "message": gettext(
            ctx.language, "3–32 characters: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter.")})
    email = _normalise_email(ctx, email, errors)
    if password is not None:
        errors += [{"field": "password", "message": m}
                   for m in _password_problems(ctx, password, username)]
    if len(display_name or "") > 200:
        errors.append({"field": "display_name",
                       "message": gettext(ctx.language, "Use at most %(n)s characters.", n=200)})
    if len(institute or "") > 200:
        errors.append({"field": "institute",
                       "message": gettext(ctx.language, "Use at most %(n)s characters.", n=200)})
    if language is not None and normalise(language) is None:
        errors.append({"field": "language", "message": gettext(
            ctx.language, "Choose one of: %(choices)s.", choices=", ".join(LANGUAGES))})
    if username and ctx.db.scalar(sa.select(User.id).where(User.username == username)):
        errors.append({"field": "username",
                       "message": gettext(ctx.language, "This user name is taken.")})
    if email and ctx.db.scalar(sa.select(User.id).where(User.email == email)):
        errors.append({"field": "email", "message": gettext(
            ctx.language, "An account with this e-mail address exists already.")})
    if errors:
        raise ValidationFailed(errors)
    user = User(
        username=username, email=email, display_name=(display_name or "").strip(),
        institute=(institute or "").strip(), language=normalise(language) if language else None,
        password_hash=hash_password(password, _hasher(ctx)) if password else None,
        email_verified_at=utcnow() if verified else None, is_service=service,
    )
    ctx.db.add(user)
    ctx.db.flush()
    if role:
        assign_role(ctx, user, role)
    return user


# ---- self-service -----------------------------------------------------------------------------


@operation(Ops.REGISTER)
def register(ctx: Context, *, username: str, email: str, password: str, display_name: str = "",
             institute: str = "", language: str | None = None) -> User:
    """Sign up: an inactive-until-verified account with the astronomer role; mails the link."""
    ctx.authorize()
    if not ctx.settings.open_registration:
        raise ValidationFailed("Self-service sign-up is closed here; ask an operator.")
    user = _new_user(ctx, username=username, email=email, password=password,
                     display_name=display_name, institute=institute,
                     language=language or ctx.language)
    ctx.set_target(user)
    _send_verification(ctx, user)
    return user


def _consume_email_token(ctx: Context, raw: str, purpose: str) -> EmailToken:
    record = ctx.db.scalar(sa.select(EmailToken).where(
        EmailToken.token_hash == token_hash(raw or ""), EmailToken.purpose == purpose))
    if record is None or record.used_at is not None or record.expires_at < utcnow():
        raise ValidationFailed(
            "This link is not valid any more: it was used already or it has expired. "
            "Ask for a new one.", field="token")
    record.used_at = utcnow()
    return record


@operation(Ops.VERIFY_EMAIL)
def verify_email(ctx: Context, *, token: str) -> User:
    """Confirm the address behind a verification link."""
    ctx.authorize()
    record = _consume_email_token(ctx, token, "verify")
    user = record.user
    ctx.set_target(user)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    return user


@operation(Ops.RESEND_VERIFICATION)
def resend_verification(ctx: Context, *, email: str) -> None:
    """Mail a fresh verification link; answers the same whether or not the address is known."""
    ctx.authorize()
    errors: list[dict] = []
    address = _normalise_email(ctx, email, errors)
    if errors:
        raise ValidationFailed(errors)
    user = ctx.db.scalar(sa.select(User).where(User.email == address))
    if user is not None and user.email_verified_at is None and user.is_active:
        _send_verification(ctx, user)


@operation(Ops.REQUEST_PASSWORD_RESET)
def request_password_reset(ctx: Context, *, email: str) -> None:
    """Mail a reset link; answers the same whether or not the address is known."""
    ctx.authorize()
    errors: list[dict] = []
    address = _normalise_email(ctx, email, errors)
    if errors:
        raise ValidationFailed(errors)
    user = ctx.db.scalar(sa.select(User).where(User.email == address))
    if user is None or not user.is_active or user.is_service:
        return
    raw = _issue_email_token(ctx, user, "reset", ctx.settings.password_reset_token_hours)
    lang = user.language or ctx.language
    body = gettext(
        lang,
        "Hello %(name)s,\n\nsomeone asked to reset the password of your %(site)s account "
        "(%(username)s). To choose a new password, open this link:\n\n%(link)s\n\nThe link is "
        "valid for %(hours)s hours. If it was not you, ignore this message: your password "
        "stays as it is.\n",
        name=user.name, site=ctx.settings.site_name, username=user.username,
        link=_link(ctx, f"/account/reset?token={raw}"),
        hours=ctx.settings.password_reset_token_hours,
    )
    _mail_after_commit(ctx, user.email, gettext(lang, "Reset your %(site)s password",
                                                 site=ctx.settings.site_name), body)


@operation(Ops.RESET_PASSWORD)
def reset_password(ctx: Context, *, token: str, password: str) -> User:
    """Set a new password from a reset link; signs the user out everywhere."""
    ctx.authorize()
    record = _consume_email_token(ctx, token, "reset")
    user = record.user
    ctx.set_target(user)
    problems = _password_problems(ctx, password, user.username)
    if problems:
        raise ValidationFailed([{"field": "password", "message": m} for m in problems])
    user.password_hash = hash_password(password, _hasher(ctx))
    if user.email_verified_at is None:  # the mail reached them: the address is theirs
        user.email_verified_at = utcnow()
    ctx.db.execute(sa.delete(WebSession).where(WebSession.user_id == user.id))
    return user


# ---- sessions ---------------------------------------------------------------------------------


def _throttle(ctx: Context, username: str) -> None:
    window_start = utcnow() - dt.timedelta(seconds=ctx.settings.login_window_seconds)
    limit = ctx.settings.login_max_failures
    by_name = ctx.db.scalar(sa.select(sa.func.count()).where(
        LoginAttempt.username == username, LoginAttempt.success.is_(False),
        LoginAttempt.at >= window_start))
    by_addr = ctx.db.scalar(sa.select(sa.func.count()).where(
        LoginAttempt.client_addr == ctx.client_addr, LoginAttempt.success.is_(False),
        LoginAttempt.at >= window_start)) if ctx.client_addr else 0
    if by_name >= limit or by_addr >= limit * 4:
        minutes = max(1, ctx.settings.login_window_seconds // 60)
        raise TooManyRequests(
            "Too many failed sign-in attempts. Wait %(minutes)s minutes, or reset your password.",
            retry_after=ctx.settings.login_window_seconds, minutes=minutes)


def open_session(ctx: Context, user: User, via: str, user_agent: str = "") -> str:
    """Start a browser session for `user` (inside an authorized login); returns the cookie."""
    raw = new_token()
    now = utcnow()
    ctx.db.add(WebSession(
        token_hash=token_hash(raw), user_id=user.id, created_at=now, last_seen_at=now,
        expires_at=now + dt.timedelta(seconds=ctx.settings.session_max_age_seconds),
        client_addr=ctx.client_addr[:64], user_agent=(user_agent or "")[:300], via=via))
    user.last_login_at = now
    return raw


@operation(Ops.LOGIN)
def login(ctx: Context, *, username: str, password: str, user_agent: str = "") -> tuple[User, str]:
    """Check a password sign-in (throttled); returns the user and a new session token."""
    ctx.authorize()
    name = (username or "").strip().lower()[:254]
    _throttle(ctx, name)
    column = User.email if "@" in name else User.username
    user = ctx.db.scalar(sa.select(User).where(column == name))
    ok = verify_password(user.password_hash if user else None, password or "", _hasher(ctx))
    attempt = LoginAttempt(username=name, client_addr=ctx.client_addr[:64], success=False)
    ctx.keep(attempt)
    if not ok or user is None or not user.is_active:
        raise ValidationFailed("The user name or the password is not right.", field="password")
    ctx.set_target(user)
    if user.email_verified_at is None:
        raise AccountNotVerified(
            "Please confirm your e-mail address first: open the link we sent you, or ask for "
            "a new one.")
    attempt.success = True
    return user, open_session(ctx, user, "password", user_agent)


def _username_from(ctx: Context, claims: dict) -> str:
    """A free local user name derived from the provider's preferred name or e-mail."""
    base = (claims.get("preferred_username") or claims.get("email", "").split("@")[0] or "user")
    base = re.sub(r"[^a-z0-9_.-]", "", base.lower())
    if not base or not base[0].isalpha():
        base = "u" + base
    base = base[:28].ljust(3, "0")
    candidate, n = base, 1
    while ctx.db.scalar(sa.select(User.id).where(User.username == candidate)):
        n += 1
        candidate = f"{base}{n}"
    return candidate


@operation(Ops.SSO_LOGIN)
def sso_login(ctx: Context, *, provider: str, claims: dict | Callable[[], dict],
              user_agent: str = "") -> tuple[User, str]:
    """Sign in with verified OpenID Connect claims: the linked account, else the account with
    the same verified e-mail address (then linked), else a new account; returns a session.

    `claims` may be a function that completes the protocol and returns the verified claims,
    so that a refusal by the provider is recorded as this operation's outcome too."""
    ctx.authorize()
    if callable(claims):
        claims = claims()
    subject = str(claims.get("sub") or "")[:255]
    if not subject:
        raise ValidationFailed("The sign-in provider did not identify the user.")
    link = ctx.db.scalar(sa.select(ExternalIdentity).where(
        ExternalIdentity.provider == provider, ExternalIdentity.subject == subject))
    email_claim = str(claims.get("email") or "").strip().lower()
    verified = claims.get("email_verified") is True
    if link is not None:
        user = link.user
    else:
        user = ctx.db.scalar(sa.select(User).where(User.email == email_claim)) \
            if email_claim and verified else None
        if user is None:
            if not email_claim:
                raise ValidationFailed("The sign-in provider did not share an e-mail address, "
                                       "which an account needs. Sign up with a password instead.")
            if ctx.db.scalar(sa.select(User.id).where(User.email == email_claim)):
                raise Conflict("An account with this e-mail address exists already, and the "
                               "provider has not verified the address. Sign in with your "
                               "password first.")
            user = _new_user(ctx, username=_username_from(ctx, claims), email=email_claim,
                             password=None, display_name=str(claims.get("name") or "")[:200],
                             verified=verified, language=ctx.language)
        link = ExternalIdentity(provider=provider, subject=subject, user_id=user.id,
                                email=email_claim)
        ctx.db.add(link)
    ctx.set_target(user)
    if not user.is_active:
        raise ValidationFailed("This account is deactivated; ask an operator.")
    if user.email_verified_at is None and verified and user.email == email_claim:
        user.email_verified_at = utcnow()
    link.last_login_at = utcnow()
    ctx.keep(LoginAttempt(username=user.username, client_addr=ctx.client_addr[:64],
                          success=True))
    return user, open_session(ctx, user, f"oidc:{provider}", user_agent)


@operation(Ops.LOGOUT)
def logout(ctx: Context, *, session_token: str | None) -> None:
    """End this browser's session (for a visitor whose session is gone already, nothing)."""
    ctx.authorize()
    if session_token:
        ctx.db.execute(sa.delete(WebSession).where(
            WebSession.token_hash == token_hash(session_token)))


def _touch_every(ctx_now: dt.datetime, last: dt.datetime | None) -> bool:
    return last is None or ctx_now - last > dt.timedelta(seconds=60)


def _touch(db, model, ident: int, column: str, now: dt.datetime) -> None:
    """Record a last-seen time in a short writing transaction of its own (a read transaction
    that starts writing can fail on SQLite while another connection writes)."""
    Database.begin_write(db)
    db.execute(sa.update(model).where(model.id == ident).values({column: now}))
    db.commit()


def user_for_session(db, raw: str) -> User | None:
    """Authentication, not an operation: the user behind a session cookie, if still valid."""
    record = db.scalar(sa.select(WebSession).where(WebSession.token_hash == token_hash(raw)))
    now = utcnow()
    if record is None or record.expires_at < now:
        return None
    user = record.user
    if not user.is_active:
        return None
    if _touch_every(now, record.last_seen_at):
        _touch(db, WebSession, record.id, "last_seen_at", now)
    return user


def user_for_api_token(db, raw: str) -> User | None:
    """Authentication, not an operation: the user behind a personal API token."""
    if not raw or len(raw) > 200:
        return None
    record = db.scalar(sa.select(ApiToken).where(ApiToken.token_hash == token_hash(raw)))
    now = utcnow()
    if record is None or record.revoked_at is not None:
        return None
    if record.expires_at is not None and record.expires_at < now:
        return None
    user = record.user
    if not user.is_active:
        return None
    if _touch_every(now, record.last_used_at):
        _touch(db, ApiToken, record.id, "last_used_at", now)
    return user


# ---- own account ------------------------------------------------------------------------------


def _current_user(ctx: Context) -> User:
    user = ctx.db.get(User, ctx.subject.id)
    assert user is not None
    ctx.set_target(user)
    return user


@operation(Ops.ME_READ)
def me(ctx: Context) -> User:
    """The signed-in user's own account."""
    ctx.authorize()
    return _current_user(ctx)


@operation(Ops.ME_UPDATE)
def update_me(ctx: Context, *, display_name: str | None = None, institute: str | None = None,
              language: str | None = None, current_password: str | None = None,
              new_password: str | None = None) -> User:
    """Change one's own profile, language or password (the password needs the current one)."""
    ctx.authorize()
    user = _current_user(ctx)
    errors: list[dict] = []
    for field_name, value in (("display_name", display_name), ("institute", institute)):
        if value is not None and len(value) > 200:
            errors.append({"field": field_name, "message": gettext(
                ctx.language, "Use at most %(n)s characters.", n=200)})
    if language is not None and normalise(language) is None:
        errors.append({"field": "language", "message": gettext(
            ctx.language, "Choose one of: %(choices)s.", choices=", ".join(LANGUAGES))})
    if new_password is not None:
        if user.password_hash and not verify_password(user.password_hash, current_password or "",
                                                      _hasher(ctx)):
            errors.append({"field": "current_password", "message": gettext(
                ctx.language, "The current password is not right.")})
        errors += [{"field": "new_password", "message": m}
                   for m in _password_problems(ctx, new_password, user.username)]
    if errors:
        raise ValidationFailed(errors)
    if display_name is not None:
        user.display_name = display_name.strip()
    if institute is not None:
        user.institute = institute.strip()
    if language is not None:
        user.language = normalise(language)
    if new_password is not None:
        user.password_hash = hash_password(new_password, _hasher(ctx))
    return user


# ---- API tokens -------------------------------------------------------------------------------


@operation(Ops.TOKEN_CREATE)
def create_token(ctx: Context, *, user_id: int | None = None, name: str = "API token",
                 expires_days: int | None = None) -> tuple[ApiToken, str]:
    """A new personal API token; the raw token is returned once and never stored."""
    if user_id is None and ctx.subject.id is None:
        raise NotAuthenticated("Please sign in to create an API token.")
    user = ctx.db.get(User, user_id if user_id is not None else ctx.subject.id)
    if user is None:
        raise NotFound("There is no user with id %(ident)s.", ident=user_id)
    ctx.authorize(user)
    name = (name or "").strip() or "API token"
    errors = []
    if len(name) > 100:
        errors.append({"field": "name", "message": gettext(ctx.language,
                                                           "Use at most %(n)s characters.", n=100)})
    if expires_days is not None and not 1 <= expires_days <= 3650:
        errors.append({"field": "expires_days", "message": gettext(
            ctx.language, "Choose between 1 and 3650 days, or none for no expiry.")})
    if errors:
        raise ValidationFailed(errors)
    raw = new_token()
    token = ApiToken(
        user_id=user.id, name=name, prefix=raw[:10], token_hash=token_hash(raw),
        expires_at=utcnow() + dt.timedelta(days=expires_days) if expires_days else None)
    ctx.db.add(token)
    ctx.db.flush()
    return token, raw


@operation(Ops.TOKEN_LIST)
def list_tokens(ctx: Context, *, user_id: int | None = None) -> list[ApiToken]:
    """The tokens the caller may see (their own; all for admins), newest first."""
    stmt = ctx.visible(sa.select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id.desc()))
    stmt = stmt.where(ApiToken.user_id == (user_id if user_id is not None else ctx.subject.id))
    return list(ctx.db.scalars(stmt))


@operation(Ops.TOKEN_REVOKE)
def revoke_token(ctx: Context, *, token_id: int) -> ApiToken:
    """Revoke a token at once; clients using it get 401 from the next request."""
    token = ctx.get_visible(ApiToken, token_id, op=Ops.TOKEN_LIST, what="API token")
    ctx.authorize(token)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


# ---- users (operators) ------------------------------------------------------------------------


@operation(Ops.USER_LIST)
def list_users(ctx: Context, *, q: str | None = None, page: int = 1, per_page: int = 50) -> Page:
    """Users the caller may see, optionally matching `q` in name, e-mail or institute."""
    ctx.authorize_listing()
    stmt = ctx.visible(sa.select(User).order_by(User.username))
    if q:
        like = f"%{q.strip()[:100].lower()}%"
        stmt = stmt.where(sa.or_(User.username.like(like), sa.func.lower(User.email).like(like),
                                 sa.func.lower(User.display_name).like(like),
                                 sa.func.lower(User.institute).like(like)))
    return paginate(ctx.db, stmt, page, per_page)


@operation(Ops.USER_LIST)
def get_user(ctx: Context, *, user_id: int | None = None, username: str | None = None) -> User:
    """One user, if the caller may see it."""
    if username is not None:
        user_id = ctx.db.scalar(sa.select(User.id).where(User.username == username.lower()))
        if user_id is None:
            raise NotFound("There is no user called “%(name)s”.", name=username)
    return ctx.get_visible(User, user_id, what="user")


@operation(Ops.USER_CREATE)
def create_user(ctx: Context, *, username: str, email: str, password: str | None,
                role: str = DEFAULT_ROLE, display_name: str = "", institute: str = "",
                service: bool = False) -> User:
    """An active, verified account made by an operator or a script."""
    ctx.authorize()
    user = _new_user(ctx, username=username, email=email, password=password,
                     display_name=display_name, institute=institute, verified=True, role=role,
                     service=service)
    ctx.set_target(user)
    return user


@operation(Ops.USER_UPDATE)
def update_user(ctx: Context, *, user_id: int, is_active: bool | None = None,
                display_name: str | None = None, institute: str | None = None,
                email_verified: bool | None = None) -> User:
    """Change an account; deactivating it also ends its sessions."""
    user = ctx.get_visible(User, user_id, op=Ops.USER_LIST, what="user")
    ctx.authorize(user)
    if user.id == ctx.subject.id and is_active is False:
        raise ValidationFailed("You cannot deactivate your own account.", field="is_active")
    if display_name is not None:
        if len(display_name) > 200:
            raise ValidationFailed("Use at most %(n)s characters.", field="display_name", n=200)
        user.display_name = display_name.strip()
    if institute is not None:
        if len(institute) > 200:
            raise ValidationFailed("Use at most %(n)s characters.", field="institute", n=200)
        user.institute = institute.strip()
    if email_verified is not None:
        user.email_verified_at = (user.email_verified_at or utcnow()) if email_verified else None
    if is_active is not None:
        user.is_active = is_active
        if not is_active:
            ctx.db.execute(sa.delete(WebSession).where(WebSession.user_id == user.id))
    return user


# ---- groups -----------------------------------------------------------------------------------


@operation(Ops.GROUP_LIST)
def list_groups(ctx: Context, *, q: str | None = None, mine: bool = False, page: int = 1,
                per_page: int = 50) -> Page:
    """Groups the caller may see; `mine` keeps those the caller belongs to."""
    stmt = ctx.visible(sa.select(Group).order_by(Group.name))
    if q:
        like = f"%{q.strip()[:100].lower()}%"
        stmt = stmt.where(sa.or_(Group.name.like(like), sa.func.lower(Group.title).like(like)))
    if mine:
        stmt = stmt.where(Group.id.in_(ctx.subject.group_ids or [-1]))
    return paginate(ctx.db, stmt, page, per_page)


@operation(Ops.GROUP_LIST)
def get_group(ctx: Context, *, group_id: int | None = None, name: str | None = None) -> Group:
    """One group with its members, if the caller may see it."""
    if name is not None:
        group_id = ctx.db.scalar(sa.select(Group.id).where(Group.name == name.lower()))
    group = ctx.get_visible(Group, group_id, what="group")
    ctx.db.scalars(sa.select(GroupMember).where(GroupMember.group_id == group.id)
                   .options(selectinload(GroupMember.user))).all()
    return group


def _group_fields(ctx: Context, title: str | None, description: str | None) -> list[dict]:
    errors = []
    if title is not None and not 1 <= len(title.strip()) <= 200:
        errors.append({"field": "title", "message": gettext(
            ctx.language, "Give a title of 1 to 200 characters.")})
    if description is not None and len(description) > 5000:
        errors.append({"field": "description", "message": gettext(
            ctx.language, "Use at most %(n)s characters.", n=5000)})
    return errors


GROUP_KINDS = ("collaboration", "institute", "project", "other")


@operation(Ops.GROUP_CREATE)
def create_group(ctx: Context, *, name: str, title: str, description: str = "",
                 kind: str = "collaboration") -> Group:
    """A new group; its creator becomes its first manager."""
    ctx.authorize()
    name = (name or "").strip().lower()
    errors = _group_fields(ctx, title, description)
    if not GROUP_NAME_RE.match(name):
        errors.append({"field": "name", "message": gettext(
            ctx.language, "2–64 characters: lower-case letters, digits, '_' or '-'.")})
    elif ctx.db.scalar(sa.select(Group.id).where(Group.name == name)):
        errors.append({"field": "name", "message": gettext(ctx.language,
                                                           "This group name is taken.")})
    if kind not in GROUP_KINDS:
        errors.append({"field": "kind", "message": gettext(
            ctx.language, "Choose one of: %(choices)s.", choices=", ".join(GROUP_KINDS))})
    if errors:
        raise ValidationFailed(errors)
    group = Group(name=name, title=title.strip(), description=description or "", kind=kind,
                  created_by_id=ctx.subject.id)
    ctx.db.add(group)
    ctx.db.flush()
    if ctx.subject.id is not None:
        ctx.db.add(GroupMember(group_id=group.id, user_id=ctx.subject.id, is_manager=True))
    ctx.set_target(group)
    return group


@operation(Ops.GROUP_UPDATE)
def update_group(ctx: Context, *, group_id: int, title: str | None = None,
                 description: str | None = None) -> Group:
    """Change a group's title or description."""
    group = ctx.get_visible(Group, group_id, op=Ops.GROUP_LIST, what="group")
    ctx.authorize(group)
    errors = _group_fields(ctx, title, description)
    if errors:
        raise ValidationFailed(errors)
    if title is not None:
        group.title = title.strip()
    if description is not None:
        group.description = description
    return group


@operation(Ops.GROUP_MANAGE_MEMBERS)
def add_member(ctx: Context, *, group_id: int, username: str, manager: bool = False) -> GroupMember:
    """Add a user to a group (or change whether they manage it)."""
    group = ctx.get_visible(Group, group_id, op=Ops.GROUP_LIST, what="group")
    ctx.authorize(group)
    user = ctx.db.scalar(sa.select(User).where(User.username == (username or "").strip().lower()))
    if user is None:
        raise ValidationFailed("There is no user called “%(name)s”.", field="username",
                               name=username)
    member = ctx.db.get(GroupMember, (group.id, user.id))
    if member is None:
        member = GroupMember(group_id=group.id, user_id=user.id, is_manager=manager)
        ctx.db.add(member)
    else:
        member.is_manager = manager
    return member


@operation(Ops.GROUP_MANAGE_MEMBERS)
def remove_member(ctx: Context, *, group_id: int, user_id: int) -> None:
    """Remove a user from a group; the last manager cannot leave it without a successor."""
    group = ctx.get_visible(Group, group_id, op=Ops.GROUP_LIST, what="group")
    ctx.authorize(group)
    member = ctx.db.get(GroupMember, (group.id, user_id))
    if member is None:
        raise NotFound("That user is not a member of this group.")
    managers = [m for m in group.members if m.is_manager]
    if member.is_manager and len(managers) == 1:
        raise Conflict("A group needs a manager: make someone else a manager first.")
    ctx.db.delete(member)


@operation(Ops.GROUP_DELETE)
def delete_group(ctx: Context, *, group_id: int) -> None:
    """Delete a group and its memberships."""
    group = ctx.get_visible(Group, group_id, op=Ops.GROUP_LIST, what="group")
    ctx.authorize(group)
    ctx.db.delete(group)
