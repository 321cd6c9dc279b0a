"""``wnn serve --redis URL [--processes N | --role frontend|merger]`` (called by
`webnn.server.commands.serve` once the model's settings are planned)."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from webnn import __version__


def serve_cluster(plans: list[Any], process: dict[str, Any], *, console: Any) -> None:
    """Serve the one planned model as a scale-out run (see docs/scale-out.md); `process`: the
    ``wnn serve`` process settings (``redis``, ``role``, ``processes``, ... among them)."""
    try:
        import redis  # noqa: F401  (the `cluster` extra)
    except ImportError:
        raise click.ClickException("--redis needs the Redis client: pip install "
                                   "'webnn[cluster]'") from None
    from webnn.cluster.launch import free_port, serve_frontend, serve_merger, supervise
    from webnn.cluster.settings import ClusterSettings, ClusterSettingsError
    from webnn.cluster.workers import WorkerError, worker_group
    from webnn.server.commands import display_host, http_limits

    if len(plans) != 1 or plans[0].prefix:
        raise click.ClickException("--redis serves one model per run; give one SPEC")
    config = plans[0].config
    try:
        settings = ClusterSettings.from_process(process)
    except ClusterSettingsError as error:  # named as the user gave them (--redis, not redis_url)
        keys = {"redis_url": "redis", "trim_stream": "keep_stream"}
        problems = [f"{keys.get(p.path, p.path)}: {p.message}" for p in error.problems]
        raise click.ClickException(str(ClusterSettingsError(problems, "serve"))) from None
    host, port = process["host"], int(process["port"])
    limits = http_limits(process)
    role, redis_url = settings.role, settings.redis_url

    def say(line: str) -> None:
        console.info("webnn", line)

    workers = None
    if settings.role != "merger":
        try:
            workers = worker_group(config, process, console.emit)
        except WorkerError as error:
            raise click.ClickException(str(error)) from None
    base = f"http://{display_host(host)}:{port}" if port else ""

    if role == "merger":
        say(f"merger of run {settings.run or plans[0].name} on {redis_url}")
        asyncio.run(serve_merger(config, settings, settings.label("merger")))
        return
    if port == 0:
        port = free_port(host)
        base = f"http://{display_host(host)}:{port}"

    def listening() -> None:
        click.echo(f"webnn {__version__}: listening on {host}:{port}", err=False)
        click.echo(f"  scale-out run on {redis_url}: http://{host}:{port}/", err=False)
        click.echo(f"  admin token (pause, resume, end, export): {config.admin_token}",
                   err=False)

    if role == "frontend":
        asyncio.run(serve_frontend(config, settings, host, port, settings.label("frontend"),
                                   on_ready=listening, limits=limits, workers=workers,
                                   base=base))
        return
    listening()
    supervise(config, settings, host, port, say, limits, workers, base)
    say("stopped; the run's state stays in Redis")
