"""`astrocloud archive …`: ingest files from disk and look at the quarantine."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

archive_app = typer.Typer(help="The observation archive.", no_args_is_help=True)

FITS_NAMES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fz")


def _expand(paths: list[Path]) -> list[Path]:
    """Files as given; folders searched (recursively) for FITS files."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.rglob("*")
                          if p.is_file() and p.name.lower().endswith(FITS_NAMES))
        else:
            out.append(path)
    return out


@archive_app.command("ingest")
def archive_ingest(
    paths: list[Path] = typer.Argument(..., help="Files, or folders to search for FITS files."),
    telescope: str = typer.Option(..., "--telescope", help="The telescope they come from."),
    derived_from: list[int] = typer.Option([], "--derived-from", help="The id of an archived "
                                           "file these products were made from (repeatable)."),
    wait: int = typer.Option(3600, "--wait", help="Seconds to wait for the ingest jobs."),
):
    """Archive files and report each one's outcome. Exit status 0 when every file was archived
    (or was a duplicate, or was quarantined with a reason); 1 when some could not be
    processed in time."""
    from astrocloud.cli import fail, system_context
    from astrocloud.data.archive import services

    files = _expand(paths)
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        fail(f"no such file: {', '.join(missing[:5])}" + (" …" if len(missing) > 5 else ""))
    if not files:
        fail("no FITS files found in the folders given.")
    with system_context() as ctx:
        runtime = ctx.runtime
        records, _jobs = services.submit_paths(ctx, telescope=telescope,
                                               paths=[str(p) for p in files],
                                               derived_from=derived_from)
        ids = [r.id for r in records]
        if ctx.settings.job_backend == "embedded":
            runtime.jobs.start_embedded()
        try:
            done = _follow(runtime.database, ids, wait)
        finally:
            runtime.jobs.stop_embedded()
    _report(done)
    pending = [r for r in done if r.status in ("queued", "running")]
    counts = {s: sum(r.status == s for r in done) for s in ("archived", "duplicate",
                                                            "quarantined")}
    Console().print(f"{counts['archived']} archived, {counts['duplicate']} duplicates, "
                  f"{counts['quarantined']} quarantined" +
                  (f", [red]{len(pending)} not processed in time[/]" if pending else "") + ".")
    if pending:
        raise typer.Exit(1)


def _follow(database, ids: list[int], wait: int):
    from astrocloud.cli import console
    from astrocloud.data.archive import services

    deadline = time.monotonic() + wait
    with Progress(TextColumn("Archiving"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        bar = progress.add_task("ingest", total=len(ids))
        while True:
            records = services.ingest_progress(database, ids)
            finished = sum(r.status not in ("queued", "running") for r in records)
            progress.update(bar, completed=finished)
            if finished == len(ids) or time.monotonic() > deadline:
                return records
            time.sleep(0.1)


def _report(records) -> None:
    table = Table("file", "outcome", "archive id", "reason or warnings")
    for r in records:
        note = r.reason or "; ".join(r.warnings or [])
        style = {"archived": "green", "duplicate": "yellow", "quarantined": "red"}.get(
            r.status, "")
        table.add_row(r.filename, f"[{style}]{r.status}[/]" if style else r.status,
                      str(r.file_id or ""), note)
    Console().print(table)


@archive_app.command("quarantine")
def archive_quarantine(limit: int = typer.Option(50, "--limit", min=1, max=1000)):
    """The files set aside, newest first, with the reasons."""
    from astrocloud.cli import system_context
    from astrocloud.data.archive import services

    with system_context() as ctx:
        page = services.list_ingests(ctx, status="quarantined", per_page=min(limit, 200))
        table = Table("id", "telescope file", "code", "reason", "kept at")
        for r in page.items:
            table.add_row(str(r.id), r.filename, r.code, r.reason, r.held_path or "")
        Console().print(table)
        Console().print(f"{page.total} quarantined in all.")
