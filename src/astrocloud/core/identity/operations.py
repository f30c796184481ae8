"""Operations of accounts, sessions, tokens, users and groups."""

from astrocloud.core.security.operations import Action, OperationSet, Query


class IdentityOps(OperationSet):
    REGISTER = Action("core.account.register", doc="Create an account (self-service sign-up).")
    VERIFY_EMAIL = Action("core.account.verify_email", doc="Confirm an e-mail address.")
    RESEND_VERIFICATION = Action("core.account.resend_verification",
                                 doc="Send the verification mail again.")
    REQUEST_PASSWORD_RESET = Action("core.account.request_password_reset",
                                    doc="Ask for a password-reset link.")
    RESET_PASSWORD = Action("core.account.reset_password",
                            doc="Set a new password with a reset link.")
    LOGIN = Action("core.session.login", doc="Sign in with a user name and password.")
    SSO_LOGIN = Action("core.session.sso_login", doc="Sign in through an OpenID Connect provider.")
    LOGOUT = Action("core.session.logout", doc="Sign out of this browser.")
    ME_READ = Action("core.me.read", doc="See one's own account and dashboard.")
    ME_UPDATE = Action("core.me.update", doc="Change one's own profile, language or password.")

    TOKEN_CREATE = Action("core.token.create", resource="user",
                          doc="Create a personal API token for a user.")
    TOKEN_LIST = Query("core.token.list", resource="api_token", doc="List API tokens.")
    TOKEN_REVOKE = Action("core.token.revoke", resource="api_token", doc="Revoke an API token.")

    USER_LIST = Query("core.user.list", resource="user", doc="List and read user accounts.")
    USER_CREATE = Action("core.user.create", doc="Create an account directly (operators).")
    USER_UPDATE = Action("core.user.update", resource="user",
                         doc="Change another user's account: activate, deactivate, profile.")

    GROUP_LIST = Query("core.group.list", resource="group", doc="List and read groups.")
    GROUP_CREATE = Action("core.group.create", doc="Create a group.")
    GROUP_UPDATE = Action("core.group.update", resource="group",
                          doc="Change a group's title and description.")
    GROUP_MANAGE_MEMBERS = Action("core.group.manage_members", resource="group",
                                  doc="Add or remove a group's members.")
    GROUP_DELETE = Action("core.group.delete", resource="group", doc="Delete a group.")
