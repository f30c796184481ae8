"""`astrocloud telescopes …` and `astrocloud programmes …`: what an operator sets up before a
telescope's data can be archived."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

telescopes_app = typer.Typer(help="Telescopes and their instruments.", no_args_is_help=True)
programmes_app = typer.Typer(help="Observing programmes (PI, co-investigators, proprietary "
                                  "period).", no_args_is_help=True)


@telescopes_app.command("create")
def telescopes_create(
    name: str = typer.Argument(..., help="The telescope's name, as in its TELESCOP keyword."),
    lon: float = typer.Option(..., "--lon", help="Site longitude, degrees east."),
    lat: float = typer.Option(..., "--lat", help="Site latitude, degrees north."),
    elevation: float = typer.Option(..., "--elevation", help="Site elevation, metres."),
    title: str = typer.Option("", "--title", help="A longer name."),
    aperture: float = typer.Option(None, "--aperture", help="Aperture, metres."),
    instrument: list[str] = typer.Option([], "--instrument", help="An instrument "
                                         "(repeatable), as in its INSTRUME keyword."),
    proprietary_months: int = typer.Option(None, "--proprietary-months", help="Default "
                                           "proprietary period of its data (default 18)."),
):
    """Create a telescope at a place on Earth; its data lands at the nearest site."""
    from astrocloud.cli import console, system_context
    from astrocloud.observation import services

    with system_context() as ctx:
        telescope = services.create_telescope(
            ctx, name=name, longitude=lon, latitude=lat, elevation=elevation, title=title,
            aperture=aperture, instruments=instrument, proprietary_months=proprietary_months)
        console.print(f"[green]Created telescope[/] {telescope.name} at "
                      f"{telescope.latitude:.4f}°, {telescope.longitude:.4f}° "
                      f"({telescope.elevation:.0f} m).")


@telescopes_app.command("update")
def telescopes_update(
    name: str = typer.Argument(..., help="The telescope."),
    instrument: list[str] = typer.Option([], "--instrument", help="Add an instrument "
                                         "(repeatable)."),
    proprietary_months: int = typer.Option(None, "--proprietary-months",
                                           help="The default proprietary period."),
    mapping: list[str] = typer.Option([], "--map", help="FIELD=KEYWORD[,KEYWORD…]: read a "
                                      "field from these header keywords (repeatable)."),
):
    """Add instruments, change the proprietary period or the header mapping."""
    from astrocloud.cli import console, fail, system_context
    from astrocloud.observation import services

    header_mapping = None
    if mapping:
        header_mapping = {}
        for item in mapping:
            field, _, keywords = item.partition("=")
            if not keywords:
                fail(f"--map takes FIELD=KEYWORD[,KEYWORD…], not “{item}”.")
            header_mapping[field.strip()] = [k.strip() for k in keywords.split(",")]
    with system_context() as ctx:
        if header_mapping is not None:
            current = dict(services.telescope_named(ctx, name).header_mapping or {})
            header_mapping = {**current, **header_mapping}
        services.update_telescope(ctx, name, header_mapping=header_mapping,
                                  proprietary_months=proprietary_months,
                                  add_instruments=instrument)
        console.print(f"[green]Updated[/] {name}.")


@telescopes_app.command("list")
def telescopes_list():
    """The telescopes, their sites and instruments."""
    from astrocloud.cli import system_context
    from astrocloud.observation import services

    with system_context() as ctx:
        table = Table("name", "lat", "lon", "elevation", "instruments", "proprietary")
        for t in services.list_telescopes(ctx):
            table.add_row(t.name, f"{t.latitude:.4f}", f"{t.longitude:.4f}",
                          f"{t.elevation:.0f} m", ", ".join(i.name for i in t.instruments),
                          f"{t.proprietary_months} months")
        Console().print(table)


@programmes_app.command("create")
def programmes_create(
    code: str = typer.Argument(..., help="The code written in headers (e.g. PROPID)."),
    telescope: str = typer.Option(..., "--telescope", help="The telescope."),
    pi: str = typer.Option(..., "--pi", help="The PI's user name."),
    coi: list[str] = typer.Option([], "--coi", help="A co-investigator's user name "
                                  "(repeatable)."),
    group: list[str] = typer.Option([], "--group", help="A group granted the data "
                                    "(repeatable)."),
    title: str = typer.Option("", "--title", help="The programme's title."),
    proprietary_months: int = typer.Option(None, "--proprietary-months", help="Its "
                                           "proprietary period (default: the telescope's)."),
):
    """Create an observing programme with its PI, co-investigators and proprietary period."""
    from astrocloud.cli import console, system_context
    from astrocloud.observation import services

    with system_context() as ctx:
        programme = services.create_programme(
            ctx, code=code, telescope=telescope, pi=pi, title=title, co_investigators=coi,
            groups=group, proprietary_months=proprietary_months)
        console.print(f"[green]Created programme[/] {programme.code} on {telescope} "
                      f"(PI {pi}).")


@programmes_app.command("list")
def programmes_list():
    """The observing programmes."""
    from astrocloud.cli import system_context
    from astrocloud.observation import services

    with system_context() as ctx:
        table = Table("code", "telescope", "title", "proprietary")
        for p in services.list_programmes(ctx):
            months = p.proprietary_months if p.proprietary_months is not None else \
                p.telescope.proprietary_months
            table.add_row(p.code, p.telescope.name, p.title, f"{months} months")
        Console().print(table)
