"""The web layer of the kernel: request context, errors, templates, middleware, routes."""
