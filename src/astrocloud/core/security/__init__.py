"""The security framework: RBAC whose permissions carry rules (prerequisites and filters)."""
