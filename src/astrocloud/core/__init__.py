"""The kernel every channel stands on: config, database, security, identity, usage, mail, i18n."""
