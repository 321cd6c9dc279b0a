import click


@click.command()
def serve() -> None:
    """Serve a model (being built)."""
    raise click.ClickException("serve is being built")


@click.command()
def export() -> None:
    """Export a model (being built)."""
    raise click.ClickException("export is being built")
