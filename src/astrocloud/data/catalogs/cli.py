"""`astrocloud catalog ...`: import a source catalog from a file, list the catalogs, delete one.

The commands call the catalog services as the platform itself (like every command), through
`astrocloud.cli`'s system context, which prints a domain error as a one-line message and exits
non-zero.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console

catalog_app = typer.Typer(help="Source catalogs: import, list, delete.", no_args_is_help=True)

FORMAT_HELP = "fits, csv, votable or parquet (default: from the file name)"


def _date(value: str | None) -> dt.datetime | None:
    from astrocloud.cli import fail

    if value is None:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        fail(f"--proprietary-until takes a date as YYYY-MM-DD, not “{value}”.")
    return dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)


@catalog_app.command("import")
def import_command(
    file: Path = typer.Argument(..., help="The table to import (FITS, CSV/ECSV, VOTable or "
                                "Parquet)."),
    name: str = typer.Option(..., "--name", help="The catalog's name: lower-case letters, "
                             "digits and underscores (e.g. lamost_dr1)."),
    title: str = typer.Option("", "--title", help="A title (default: from the file, or the "
                              "name)."),
    description: str = typer.Option("", "--description", help="What the catalog holds."),
    ra: str = typer.Option(None, "--ra", help="The right ascension column (default: found by "
                           "its UCD or a common name such as ra, raj2000)."),
    dec: str = typer.Option(None, "--dec", help="The declination column (default: found like "
                            "--ra)."),
    format_: str = typer.Option(None, "--format", help=FORMAT_HELP),
    proprietary_until: str = typer.Option(None, "--proprietary-until", metavar="YYYY-MM-DD",
                                          help="Keep it private until this date (UTC); "
                                          "public at once without it."),
    owner: str = typer.Option(None, "--owner", help="The user who owns it (sees it while it "
                              "is private)."),
    group: list[str] = typer.Option([], "--group", help="A group that sees it while it is "
                                    "private (repeatable)."),
    meta: Path = typer.Option(None, "--meta", help="A JSON file with column metadata: "
                              "{\"columns\": {name: {unit, ucd, description, datatype}}} "
                              "(next to a CSV file, FILE.json is read by default)."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Skip rows without a valid "
                                      "position (and count them) instead of failing."),
    index: str = typer.Option(None, "--index", help="The spatial index: healpix or q3c "
                              "(default: q3c on PostgreSQL when available)."),
):
    """Import a table of sources as a catalog, with column metadata and a spatial index.

    The catalog can be searched the moment the import ends. Rows go in as one transaction:
    an import that fails leaves nothing behind."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from astrocloud.cli import console, system_context
    from astrocloud.data.catalogs import services

    until = _date(proprietary_until)
    progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("rows"), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=console, transient=False)
    task = progress.add_task(f"Importing {file.name}", total=None)

    def advance(done: int, total: int | None) -> None:
        # shown from the first chunk on: a mistake found before reading is just its message
        progress.start()
        progress.update(task, completed=done, total=total)

    with system_context() as ctx:
        try:
            result = services.import_catalog(
                ctx, file, name=name, title=title, description=description, format=format_,
                ra=ra, dec=dec, proprietary_until=until, owner=owner, groups=group, meta=meta,
                skip_invalid=skip_invalid, index=index, progress=advance)
            progress.update(task, completed=result.rows + result.skipped_rows,
                            total=result.rows + result.skipped_rows)
        finally:
            progress.stop()
        catalog = result.catalog
        for column, why in result.skipped_columns:
            console.print(f"[yellow]skipped column[/] {column} ({why})")
        skipped = f", {result.skipped_rows:,} rows without a valid position skipped" \
            if result.skipped_rows else ""
        visibility = "public" if catalog.proprietary_until is None or \
            catalog.proprietary_until <= ctx.now() else \
            f"private until {catalog.proprietary_until:%Y-%m-%d}"
        Console().print(
            f"Imported {result.rows:,} rows into catalog {catalog.name} (table "
            f"{catalog.table_name}, {len(catalog.columns)} columns, position "
            f"{catalog.ra_column}/{catalog.dec_column}, {catalog.index_kind} index, "
            f"{visibility}) in {result.seconds:.1f} s, {result.rows_per_second:,.0f} rows/s"
            f"{skipped}.", soft_wrap=True, highlight=False)


@catalog_app.command("list")
def list_command():
    """The catalogs: name, rows, position columns, index, and whether they are public."""
    from rich.table import Table

    from astrocloud.cli import system_context
    from astrocloud.data.catalogs import services

    with system_context() as ctx:
        table = Table("name", "rows", "columns", "position", "index", "public", "title")
        now = ctx.now()
        for c in services.list_catalogs(ctx):
            public = "yes" if c.is_public(now) else f"from {c.proprietary_until:%Y-%m-%d}"
            table.add_row(c.name, f"{c.n_rows:,}", str(len(c.columns)),
                          f"{c.ra_column}/{c.dec_column}", c.index_kind, public, c.title)
        Console().print(table)


@catalog_app.command("delete")
def delete_command(name: str = typer.Argument(..., help="The catalog to delete.")):
    """Delete a catalog: its table with every row, and its metadata."""
    from astrocloud.cli import console, system_context
    from astrocloud.data.catalogs import services

    with system_context() as ctx:
        rows = services.delete_catalog(ctx, name)
    console.print(f"Deleted catalog {name} ({rows:,} rows).")
