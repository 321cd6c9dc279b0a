import click


@click.command()
def strategies() -> None:
    """List merge strategies (being built)."""
    raise click.ClickException("strategies is being built")
