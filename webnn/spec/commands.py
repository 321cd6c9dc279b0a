import click


@click.command()
@click.argument("spec")
def validate(spec: str) -> None:
    """Check a model spec (being built)."""
    raise click.ClickException("validate is being built")
