"""HTTP routes of the public channel (its landing page until its services arrive)."""

from astrocloud.core.web.pages import channel_landing_router

pages = channel_landing_router("public")
