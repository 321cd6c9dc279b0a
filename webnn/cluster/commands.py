"""``wnn serve --redis URL [--processes N | --role frontend|merger]`` (called by
`webnn.server.commands.serve` once the model's settings are planned)."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from webnn import __version__


def serve_cluster(plans: list[Any], process: dict[str, Any], *, redis_url: str, processes: int,
                  role: str, keep_stream: bool, console: Any) -> None:
    """Serve the one planned model as a scale-out run (see docs/scale-out.md)."""
    try:
        import redis  # noqa: F401  (the `cluster` extra)
    except ImportError:
        raise click.ClickException("--redis needs the Redis client: pip install "
                                   "'webnn[cluster]'") from None
    from webnn.cluster.launch import free_port, serve_frontend, serve_merger, supervise
    from webnn.cluster.settings import ClusterSettings, ClusterSettingsError

    if len(plans) != 1 or plans[0].prefix:
        raise click.ClickException("--redis serves one model per run; give one SPEC")
    config = plans[0].config
    problems = []
    if process.get("local_workers"):
        problems.append("--local-workers (start wnn-worker processes against the port)")
    if problems:
        raise click.ClickException(f"not supported with --redis yet: {', '.join(problems)}")
    try:
        settings = ClusterSettings(redis_url=redis_url, role=role, processes=processes,
                                   trim_stream=not keep_stream)
    except ClusterSettingsError as error:
        raise click.ClickException(str(error)) from None
    host, port = process["host"], int(process["port"])

    def say(line: str) -> None:
        console.info("webnn", line)

    if role == "merger":
        say(f"merger of run {settings.run or plans[0].name} on {redis_url}")
        asyncio.run(serve_merger(config, settings, settings.label("merger")))
        return
    if port == 0:
        port = free_port(host)

    def listening() -> None:
        click.echo(f"webnn {__version__}: listening on {host}:{port}", err=False)
        click.echo(f"  scale-out run on {redis_url}: http://{host}:{port}/", err=False)
        click.echo(f"  admin token (pause, resume, end, export): {config.admin_token}",
                   err=False)

    if role == "frontend":
        asyncio.run(serve_frontend(config, settings, host, port, settings.label("frontend"),
                                   on_ready=listening))
        return
    listening()
    supervise(config, settings, host, port, say)
    say("stopped; the run's state stays in Redis")
