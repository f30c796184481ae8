"""Demo data for `make demo`: accounts and groups to look around with. Idempotent.

Later channels add their own demo loaders here (telescopes, calls, archive files).
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa

from astrocloud.core.identity import services as identity
from astrocloud.core.identity.models import Group, User
from astrocloud.core.service import Context

DEMO_PASSWORD = "astrocloud-demo"

DEMO_USERS = (
    # username, e-mail, full name, institute, role
    ("admin", "admin@demo.astrocloud.org", "Platform Administrator", "AstroCloud", "admin"),
    ("operator", "operator@demo.astrocloud.org", "Wang Fang", "Yunnan Observatories", "operator"),
    ("demo", "demo@demo.astrocloud.org", "Li Hua", "National Astronomical Observatories",
     "astronomer"),
    ("chen", "chen@demo.astrocloud.org", "Chen Jing", "Purple Mountain Observatory", "astronomer"),
)

DEMO_GROUPS = (
    ("lamost-stellar", "LAMOST stellar spectra working group", "collaboration", "demo",
     ["chen"]),
    ("ynao", "Yunnan Observatories", "institute", "operator", ["demo"]),
)


def load_demo(ctx: Context) -> Iterator[str]:
    for username, email, name, institute, role in DEMO_USERS:
        if ctx.db.scalar(sa.select(User.id).where(User.username == username)):
            yield f"user {username} exists"
            continue
        identity.create_user(ctx, username=username, email=email, password=DEMO_PASSWORD,
                             role=role, display_name=name, institute=institute)
        yield f"user {username} created ({role})"
    for name, title, kind, owner, members in DEMO_GROUPS:
        if ctx.db.scalar(sa.select(Group.id).where(Group.name == name)):
            yield f"group {name} exists"
            continue
        group = identity.create_group(ctx, name=name, title=title, kind=kind)
        identity.add_member(ctx, group_id=group.id, username=owner, manager=True)
        for member in members:
            identity.add_member(ctx, group_id=group.id, username=member)
        yield f"group {name} created"
    yield from _demo_space(ctx)
    yield (f"Demo sign-in: user [bold]demo[/] (astronomer) or [bold]admin[/], "
           f"password [bold]{DEMO_PASSWORD}[/]")


WELCOME = """Welcome to your MyVOSpace!

This is your private storage space. The same files are here in the browser
(Cloud > My space), through WebDAV at /dav/demo/ and through VOSpace at
/vospace/nodes/demo. Copies are kept at two data-center sites.
"""


def _demo_space(ctx: Context) -> Iterator[str]:
    from astrocloud.cloud import services as vos
    from astrocloud.core.errors import NotFound

    try:
        vos.get_node(ctx, "demo/welcome.txt")
        yield "MyVOSpace of demo exists"
        return
    except NotFound:
        pass
    vos.create_container(ctx, "demo/observations")
    vos.upload(ctx, "demo/welcome.txt", iter([WELCOME.encode()]), content_type="text/plain")
    yield "MyVOSpace of demo created (welcome.txt, observations/)"
