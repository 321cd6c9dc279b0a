import click


@click.command()
def compare() -> None:
    """Compare merge strategies (being built)."""
    raise click.ClickException("compare is being built")
