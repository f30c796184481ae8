"""Accounts, groups, sessions, API tokens and single sign-on."""
