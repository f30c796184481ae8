"""The `astrocloud` command: serve, migrate, manage accounts, load the demo.

Commands call the same service functions as the web, as the platform itself (the `system`
subject) since whoever runs them already has the machine.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager

import typer
from rich.console import Console

from astrocloud import __version__
from astrocloud.core.config import Settings, get_settings
from astrocloud.core.db import Database
from astrocloud.core.errors import DomainError
from astrocloud.core.security.engine import Subject
from astrocloud.core.service import Context

app = typer.Typer(
    name="astrocloud",
    help="AstroCloud: telescope proposals, the observation archive, VO services and compute "
         "next to the data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
storage_app = typer.Typer(help="The distributed storage layer.", no_args_is_help=True)
sites_app = typer.Typer(help="Data-center sites.", no_args_is_help=True)
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
tokens_app = typer.Typer(help="Personal API tokens.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(storage_app, name="storage")
app.add_typer(sites_app, name="sites")


def _add_channel_commands() -> None:
    # The channels' own command groups (their modules import this one's helpers lazily).
    from astrocloud.data.archive.cli import archive_app
    from astrocloud.data.catalogs.cli import catalog_app
    from astrocloud.observation.cli import programmes_app, telescopes_app

    app.add_typer(telescopes_app, name="telescopes")
    app.add_typer(programmes_app, name="programmes")
    app.add_typer(archive_app, name="archive")
    app.add_typer(catalog_app, name="catalog")


_add_channel_commands()

console = Console(stderr=True)


def fail(message: str, code: int = 1) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@contextmanager
def system_context(settings: Settings | None = None):
    """A service context acting as the platform itself, with errors printed, not raised."""
    from astrocloud.channels import load_all
    from astrocloud.core.runtime import build_runtime

    load_all()
    settings = settings or get_settings()
    database = Database(settings.effective_database_url)
    _require_schema(database)
    runtime = build_runtime(settings, database)
    ctx = Context(database=database, settings=settings, subject=Subject.system_subject(),
                  via="cli", runtime=runtime)
    try:
        yield ctx
    except DomainError as exc:
        fail(str(exc))
    finally:
        ctx.close()
        database.dispose()


def _require_schema(database: Database) -> None:
    from astrocloud.core.migrate import is_up_to_date

    if not is_up_to_date(database):
        fail("the database schema is missing or out of date: run `astrocloud db upgrade` first.")


@app.callback(invoke_without_command=True)
def main_callback(version: bool = typer.Option(False, "--version", help="Print the version.")):
    if version:
        print(__version__)
        raise typer.Exit()


@db_app.command("upgrade")
def db_upgrade():
    """Create or migrate the schema, then add missing defaults (roles, policies)."""
    from astrocloud.channels import policy_files
    from astrocloud.core.migrate import upgrade
    from astrocloud.core.security.services import seed_policies
    from astrocloud.core.storage.services import seed_sites

    settings = get_settings()
    database = Database(settings.effective_database_url)
    try:
        with console.status("Migrating the database schema…"):
            upgrade(database)
        with database.session() as session:
            added = seed_policies(session, policy_files())
            sites = seed_sites(session, settings)
    finally:
        database.dispose()
    console.print(f"[green]Database ready[/] at {_safe_url(settings.effective_database_url)} "
                  f"({added['roles']} roles, {added['permissions']} permissions and {sites} "
                  f"sites added).")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, max=64, help="Web worker processes."),
):
    """Serve the portal, the API and the VO services."""
    import uvicorn

    from astrocloud.app import create_app

    settings = get_settings()
    database = Database(settings.effective_database_url)
    _require_schema(database)
    from astrocloud.core.runtime import build_runtime

    console.print(f"[bold]AstroCloud[/] {__version__} on http://{host}:{port}/  "
                  f"(home: {settings.home}, jobs: {settings.job_backend})")
    if workers > 1:
        uvicorn.run("astrocloud.app:create_app", factory=True, host=host, port=port,
                    workers=workers, proxy_headers=False)
        return
    runtime = build_runtime(settings, database)
    application = create_app(runtime=runtime)
    if settings.job_backend == "embedded":
        runtime.jobs.start_embedded()  # the embedded default needs no separate worker
    try:
        uvicorn.run(application, host=host, port=port, proxy_headers=False)
    finally:
        runtime.jobs.stop_embedded()


@users_app.command("create")
def users_create(
    username: str = typer.Argument(..., help="Login name (lower-case letters, digits, . _ -)."),
    email: str = typer.Option(..., "--email", help="E-mail address."),
    password: str = typer.Option(None, "--password", help="Password (omit for token-only "
                                 "service accounts)."),
    role: list[str] = typer.Option(["astronomer"], "--role", help="Role to give (repeatable)."),
    name: str = typer.Option("", "--name", help="Full name."),
    institute: str = typer.Option("", "--institute", help="Institute."),
    service: bool = typer.Option(False, "--service", help="A service account (e.g. a "
                                 "telescope's data system)."),
):
    """Create an active, verified account."""
    from astrocloud.core.identity import services as identity
    from astrocloud.core.security import services as security

    with system_context() as ctx:
        import sqlalchemy as sa

        from astrocloud.core.security.models import Role

        known = set(ctx.db.scalars(sa.select(Role.name)))
        unknown = [r for r in role if r not in known or r == "public"]
        if unknown:
            fail(f"There is no role called “{'”, “'.join(unknown)}”; the roles are: "
                 f"{', '.join(sorted(known - {'public'}))}.")
        user = identity.create_user(ctx, username=username, email=email, password=password,
                                    role=role[0] if role else "", display_name=name,
                                    institute=institute, service=service)
        for extra in role[1:]:
            security.assign(ctx, user_id=user.id, role=extra)
        console.print(f"[green]Created[/] {user.username} <{user.email}> with roles "
                      f"{', '.join(role) or 'none'}.")


@tokens_app.command("create")
def tokens_create(
    username: str = typer.Argument(..., help="Whose token."),
    name: str = typer.Option("cli", "--name", help="A name to recognise the token by."),
    expires_days: int = typer.Option(None, "--expires-days", min=1, max=3650,
                                     help="Expire after this many days (default: never)."),
):
    """Create a personal API token; prints only the token, on the last line."""
    from astrocloud.core.identity import services as identity

    with system_context() as ctx:
        user = identity.get_user(ctx, username=username)
        _token, raw = identity.create_token(ctx, user_id=user.id, name=name,
                                            expires_days=expires_days)
    sys.stdout.write(raw + "\n")


@app.command()
def demo():
    """Load the demo data (idempotent): demo accounts and groups, telescopes, programmes and a
    synthetic archive run through the real ingest path."""
    from astrocloud.demo import load_demo

    with system_context() as ctx:
        try:
            for line in load_demo(ctx):
                console.print(line)
            if ctx.settings.job_backend == "embedded":
                with console.status("Grading the demo files and making their previews…"):
                    _wait_for_tasks(ctx, "data.archive.qc")
        finally:
            ctx.runtime.jobs.stop_embedded()


def _wait_for_tasks(ctx, task: str, timeout: float = 600) -> None:
    """Wait until no job of `task` is queued or running (the embedded worker is working)."""
    import time

    import sqlalchemy as sa

    from astrocloud.core.jobs import Job

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with ctx.database.session(write=False) as db:
            left = db.scalar(sa.select(sa.func.count()).select_from(Job).where(
                Job.task == task, Job.status.in_(("queued", "running", "retrying"))))
        if not left:
            return
        time.sleep(0.2)


@app.command()
def worker(
    workers: int = typer.Option(None, min=1, max=64, help="Worker threads (default: "
                                "the job_workers setting)."),
):
    """Work the job queue (transfers, sweeps, ingest, …) until interrupted."""
    with system_context() as ctx:
        settings = ctx.settings
        console.print(f"Working the {settings.job_backend} job queue "
                      f"({workers or settings.job_workers} threads); Ctrl-C to stop.")
        ctx.runtime.jobs.run_worker(workers or settings.job_workers)


@app.command("site-agent")
def site_agent(
    site: str = typer.Option(..., "--site", help="The site this agent serves."),
    port: int = typer.Option(..., "--port", min=1, max=65535, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    storage: str = typer.Option(None, help="The site's own storage (default: "
                                "file://$ASTROCLOUD_HOME/sites/<site>)."),
):
    """Serve one site's storage to the other sites over HTTP (signed URLs, byte ranges)."""
    import uvicorn

    from astrocloud.core.storage.agent import create_agent
    from astrocloud.core.storage.backends import StorageError, open_store
    from astrocloud.core.storage.services import SITE_NAME_RE

    settings = get_settings()
    if not SITE_NAME_RE.match(site):
        fail(f"{site!r} is not a site name.")
    url = storage or f"file://{settings.home / 'sites' / site}"
    try:
        store = open_store(url)
    except (StorageError, OSError) as exc:
        fail(f"cannot use {url}: {exc}")
    console.print(f"Site agent for [bold]{site}[/] on http://{host}:{port}/ serving {url}")
    uvicorn.run(create_agent(site, store, settings.effective_secret_key()), host=host,
                port=port, log_level="warning")


@storage_app.command("sweep")
def storage_sweep(
    deep: bool = typer.Option(True, "--deep/--quick", help="Verify checksums (deep) or only "
                              "presence and size (quick)."),
    wait: int = typer.Option(600, help="Seconds to wait for the repairs it queues."),
):
    """Find missing or corrupt replicas and repair them from good copies."""
    from astrocloud.core.storage.tasks import sweep

    with system_context() as ctx:
        runtime = ctx.runtime
        if ctx.settings.job_backend == "embedded":
            runtime.jobs.start_embedded()
        try:
            with console.status("Sweeping every replica…"):
                result = sweep(runtime, deep=deep)
            console.print(f"Checked {result['checked']} replicas: {result['bad']} missing or "
                          f"corrupt, {result['added']} copies added, "
                          f"{len(result['repair_jobs'])} files to repair.")
            if result["repair_jobs"]:
                with console.status("Repairing…"):
                    jobs = runtime.jobs.wait(result["repair_jobs"], timeout=wait)
                failed = [j for j in jobs if j.status != "done"]
                for job in failed:
                    console.print(f"[red]job {job.id} {job.status}[/]: {job.error[:200]}")
                if failed:
                    raise typer.Exit(1)
                console.print("[green]All repairs done.[/]")
        finally:
            runtime.jobs.stop_embedded()


@sites_app.command("list")
def sites_list():
    """The data-center sites, their storage and status."""
    from rich.table import Table

    from astrocloud.core.storage.services import list_sites

    with system_context() as ctx:
        table = Table("name", "city", "lat", "lon", "status", "storage")
        for s in list_sites(ctx):
            table.add_row(s.name, s.city, f"{s.latitude:.3f}", f"{s.longitude:.3f}", s.status,
                          s.storage_url)
        Console().print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
