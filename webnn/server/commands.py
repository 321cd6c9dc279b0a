"""``wnn serve`` and ``wnn export``.

``wnn serve`` collects settings from an optional TOML file (`webnn.server.toml_config`) and the
command line (flags override file values), builds one `create_app` per model before listening (so a
bad spec, data module, strategy or parameter fails with exit status 1 and nothing is served), mounts
several models under ``/models/<name>/`` (`webnn.server.multi`), listens, prints the URLs and the
admin token (in a box; kept in the state directory across restarts), starts ``--local-workers``,
prints a status line every few seconds (`webnn.server.console`) and, on SIGINT/SIGTERM, stops the
workers and cleans the app up, which writes the final checkpoint when there is a state directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from aiohttp import web

from webnn import __version__
from webnn.bundled import default_example
from webnn.node_worker import worker_dir
from webnn.server.allocator import pin_malloc
from webnn.server.console import (
    STATUS_SECONDS,
    AdminToken,
    Console,
    StatusLine,
    Verbosity,
    admin_token_box,
    install_logging,
    resolve_admin_token,
)
from webnn.server.runner import HttpLimits, LoopUnavailable, WebnnRunner
from webnn.server.runner import run as run_on_loop
from webnn.server.toml_config import (
    MODEL_KEYS,
    NAME_PATTERN,
    PROCESS_KEYS,
    ConfigError,
    FileSettings,
    load_toml,
)
from webnn.server.workers import (
    LocalWorkers,
    WorkerError,
    check_worker_setup,
    worker_specs,
)
from webnn.settings import cli as settings_cli
from webnn.settings.cli import BYTES, ByteSize, parse_pairs
from webnn.settings.serve import ProcessSettings, ServeConfig

__all__ = ["BYTES", "ByteSize", "export", "merge_settings", "parse_pairs", "serve"]

PROCESS_DEFAULTS: dict[str, Any] = {
    name: field.default for name, field in ProcessSettings.model_fields.items()}
"""The process settings' defaults, from `ProcessSettings`."""
GIL_SWITCH_SECONDS = 0.0005
"""`sys.setswitchinterval` of a `wnn serve` process (docs/capacity.md)."""
HTTP_LIMITS = HttpLimits()
"""The HTTP layer's default limits (`webnn.server.runner`: request line and header sizes, header
count, the time to a complete request line and headers); `wnn serve` takes each from its process
settings (`max_line_size`, `max_field_size`, `max_headers`, `header_timeout`)."""


def http_limits(process: dict[str, Any]) -> HttpLimits:
    """The `HttpLimits` of a `wnn serve` process from its settings (defaults where absent)."""
    return HttpLimits(**{name: process.get(name, getattr(HTTP_LIMITS, name))
                         for name in ("max_line_size", "max_field_size", "max_headers",
                                      "header_timeout")})
HEADER_SECONDS = HTTP_LIMITS.header_timeout
SERVER_OPTIONS: dict[str, Any] = {"keepalive_timeout": HEADER_SECONDS}
"""The keep-alive option an embedding site passes to a plain ``web.AppRunner`` to get the same
idle bound (`WebnnRunner` sets it from `HTTP_LIMITS`)."""

def echo(line: str = "") -> None:
    """Print a line and flush, so a parent process reading our pipe sees it at once."""
    click.echo(line)
    sys.stdout.flush()


@dataclasses.dataclass
class ModelPlan:
    """One model to serve: its name, mount prefix ("" when served alone) and `ServeConfig`."""

    name: str
    prefix: str
    config: Any


def merge_settings(
    file: FileSettings, specs: tuple[str, ...], cli: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Combine file settings, SPEC arguments and CLI flags (None = not given) into
    ``(process settings, [model settings])``; CLI values win, option tables merge per key."""
    if specs and file.multi:
        raise click.UsageError(
            "the config file lists [[models]]; give model specs there or on the command line, "
            "not both"
        )
    models = [dict(file.models[0], spec=spec) for spec in specs] if specs else file.models
    process = dict(PROCESS_DEFAULTS)
    process.update(file.process)
    process.update({k: v for k, v in cli.items() if k in PROCESS_KEYS and v is not None})
    merged = []
    for model in models:
        model = dict(model)
        for key in MODEL_KEYS:
            value = cli.get(key)
            if value is None or value == {}:
                continue
            if isinstance(value, dict) and isinstance(model.get(key, {}), dict):
                value = {**model.get(key, {}), **value}
            model[key] = value
        merged.append(model)
    return process, merged


def with_default_example(models: list[dict[str, Any]], multi: bool) -> list[dict[str, Any]]:
    """`models`, or, when one model has neither a spec nor data, that model serving the bundled
    example (`webnn.bundled.default_example`), which is printed."""
    if multi or len(models) != 1 or models[0].get("spec") or models[0].get("data"):
        return models
    example = default_example()
    echo(f"webnn: no SPEC given; serving the bundled example {example.spec.stem}")
    echo(f"  spec: {example.spec}")
    echo(f"  data: {example.data}")
    return [dict(models[0], spec=str(example.spec), data=str(example.data))]


def _spec_problems(exc: Exception, spec: str) -> str:
    problems = getattr(exc, "problems", None)
    if not problems:
        return f"{spec}: {exc}"
    return f"{spec}: invalid model spec:\n" + "\n".join(
        f"  {p.path}: {p.message}" for p in problems
    )


def plan_models(
    process: dict[str, Any], models: list[dict[str, Any]], mounted: bool
) -> list[ModelPlan]:
    """Load each spec, name each model, and build its `ServeConfig` (no app yet). `mounted`
    serves the models under ``/models/<name>/`` with state in ``state_dir/<name>``."""
    several = len(models) > 1
    for index, model in enumerate(models):
        for required, hint in (("spec", "a SPEC argument or `spec` in --config"),
                               ("data", "--data MODULE or `data` in --config")):
            if not model.get(required):
                where = f"models[{index}]" if several else "model"
                raise click.UsageError(f"{where}: no {required} given (use {hint})")

    from webnn.spec import load_spec

    fields = {f.alias or name for name, f in ServeConfig.model_fields.items()}
    state_dir = process.get("state_dir")
    plans: list[ModelPlan] = []
    for index, model in enumerate(models):
        where = f"models[{index}]" if several else "model"
        try:
            spec = load_spec(Path(model["spec"]))
        except Exception as exc:  # SpecError, missing file, bad JSON: all reported the same way
            raise click.ClickException(_spec_problems(exc, model["spec"])) from exc
        name = model.get("name") or spec.name
        if mounted and not NAME_PATTERN.match(name):
            raise click.ClickException(
                f"{where}: model name {name!r} cannot be a URL segment; set `name` in --config"
            )
        if any(p.name == name for p in plans):
            raise click.ClickException(
                f"{where}: two models are named {name!r}; give each a distinct `name` in --config"
            )
        values: dict[str, Any] = {k: v for k, v in model.items() if k != "spec"}
        values["spec"] = spec
        for key in ("admin_token", "join_token", "tfjs_url", "client_dir"):
            if process.get(key) is not None:
                values[key] = process[key]
        if state_dir is not None:
            values["state_dir"] = Path(state_dir) / name if mounted else Path(state_dir)
        unknown = sorted(set(values) - fields)
        if unknown:  # a settings key this version of ServeConfig does not take
            raise click.ClickException(f"{where}: unsupported setting(s): {', '.join(unknown)}")
        try:
            config = ServeConfig(**values)
        except ConfigError as exc:  # every problem of this model's settings, with its key
            problems = [p.under(where) if several else p for p in exc.problems]
            raise click.ClickException(str(ConfigError(problems, f"settings of {name}"))
                                       ) from exc
        prefix = f"/models/{name}/" if mounted else ""
        plans.append(ModelPlan(name=name, prefix=prefix, config=config))
    return plans


def build_root_app(plans: list[ModelPlan]) -> tuple[web.Application, dict[str, web.Application]]:
    """Create every model's app (loading data, strategy, checkpoints) and the app to serve;
    returns ``(app to serve, {model name: model app})``."""
    from webnn.server.app import create_app
    from webnn.server.multi import create_multi_app

    apps: dict[str, web.Application] = {}
    for plan in plans:
        try:
            apps[plan.name] = create_app(plan.config)
        except Exception as exc:  # every set-up failure becomes a clean CLI error
            raise click.ClickException(f"{plan.name}: {exc}") from exc
    if len(plans) == 1 and not plans[0].prefix:
        return apps[plans[0].name], apps
    return create_multi_app(apps), apps


def display_host(host: str) -> str:
    """The host to print in URLs: a wildcard address is shown as this machine's name."""
    if host in ("", "0.0.0.0", "::"):
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host


def print_banner(base: str, plans: list[ModelPlan], admin_token: AdminToken, listen: str,
                 state_dir: str | None, console: Console) -> None:
    """The lines users (and tests) read, at every verbosity: ``volunteer page: URL``,
    ``dashboard: URL``, the admin token once in a box (``admin token: T``) and whether progress
    survives the exit."""
    echo = console.plain
    echo(f"webnn {__version__}: listening on {listen}")
    if len(plans) == 1 and not plans[0].prefix:
        echo(f"webnn: serving {plans[0].name}")
        echo(f"  volunteer page: {base}/")
        echo(f"  dashboard:      {base}/dashboard")
    else:
        echo(f"webnn: serving {len(plans)} models")
        echo(f"  index:          {base}/")
        for plan in plans:
            echo(f"  {plan.name}: volunteer page {base}{plan.prefix}  "
                 f"dashboard {base}{plan.prefix}dashboard")
    for line in admin_token_box(admin_token.token, admin_token.note()):
        echo(line)
    if state_dir:
        echo(f"Press Ctrl+C to stop (a checkpoint is written to {state_dir} on the way out).")
    else:
        console.warning("webnn", "no --state-dir: progress is lost on exit")
        echo("Press Ctrl+C to stop.")


async def run_server(
    app: web.Application,
    host: str,
    port: int,
    on_listening: Callable[[str, str], None],
    workers: Callable[[str], LocalWorkers | None],
    console: Console | None = None,
    statuses: Callable[[], dict[str, dict[str, Any]]] | None = None,
    limits: HttpLimits = HTTP_LIMITS,
) -> None:
    """Listen (in `WebnnRunner` with `limits`), call `on_listening(base_url, listen_address)`,
    start workers, print a status line
    per model (`statuses()`: model name -> its status) every `STATUS_SECONDS`, wait for SIGINT or
    SIGTERM, then stop the workers and clean the app up (which writes the checkpoint).
    A second signal during shutdown exits at once."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    console = console or Console()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            console.warning("webnn", f"{signal.Signals(signum).name} again, exiting without "
                                     "cleanup")
            os._exit(128 + signum)
        console.info("webnn", f"{signal.Signals(signum).name} received, shutting down")
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    runner = WebnnRunner(app, handle_signals=False, limits=limits)
    await runner.setup()
    group: LocalWorkers | None = None
    reporter: asyncio.Task | None = None
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        actual_port = bound[1]
        base = f"http://{display_host(host)}:{actual_port}"
        on_listening(base, f"{host}:{actual_port}")
        group = workers(base)
        if group is not None:
            await group.start()
        if statuses is not None and console.shows():
            reporter = asyncio.create_task(report_status(console, statuses, stop))
        await stop.wait()
    finally:
        if reporter is not None:
            reporter.cancel()
        if group is not None:
            await group.stop()
        await runner.cleanup()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def report_status(console: Console, statuses: Callable[[], dict[str, dict[str, Any]]],
                        stop: asyncio.Event) -> None:
    """Every `STATUS_SECONDS` until `stop`: one status line per model (`StatusLine`)."""
    line = StatusLine()
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), STATUS_SECONDS)
            return
        now = time.monotonic()
        current = statuses()
        for name, status in current.items():
            source = "status" if len(current) == 1 else f"status {name}"
            console.info(source, line.render(name, status, now))


SERVE_OPTIONS_HELP = """
Serve SPEC (a model spec JSON) with training data from --data to browser and Node clients.
With no SPEC (and no spec in --config), serve the bundled example: digits_mlp on the digits data.
Several SPECs (sharing --data and --strategy) or a TOML file with [[models]] serve several models in
one process, each at /models/<name>/ with an index page at /.
"""


@click.command(help=SERVE_OPTIONS_HELP)
@click.argument("specs", nargs=-1, metavar="[SPEC]...")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML file with serve settings; command-line flags override its values.")
@settings_cli.options(ServeConfig, ProcessSettings)
@click.option("--verbose", "-v", is_flag=True,
              help="Also print a line per task of the local workers.")
@click.option("--quiet", "-q", is_flag=True,
              help="Print only the URLs, the admin token, warnings and errors (no status lines).")
def serve(specs: tuple[str, ...], config_file: Path | None, verbose: bool, quiet: bool,
          **flags: Any) -> None:
    if verbose and quiet:
        raise click.UsageError("--verbose and --quiet cannot be combined")
    console = Console(Verbosity.VERBOSE if verbose else
                      Verbosity.QUIET if quiet else Verbosity.NORMAL)
    install_logging(console)
    # Merges run in a worker thread between the event loop's turns; the default 5 ms GIL switch
    # interval makes that thread wait up to 5 ms at every numpy call while the loop is busy.
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    try:
        file = load_toml(config_file) if config_file is not None else FileSettings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    cli = settings_cli.collect(dict(flags), ServeConfig, ProcessSettings)
    process, models = merge_settings(file, specs, cli)
    if process.get("pin_malloc", True):  # before any thread; forked cluster children inherit it
        pinned = pin_malloc()
        console.emit("webnn", pinned.detail, level="info" if pinned.applied else "warning",
                     detail=True)
    models = with_default_example(models, file.multi)
    try:
        admin_token = resolve_admin_token(process.get("admin_token"), process.get("state_dir"))
    except OSError as exc:
        raise click.ClickException(f"cannot read the kept admin token: {exc}") from exc
    process["admin_token"] = admin_token.token

    plans = plan_models(process, models, mounted=file.multi or len(models) > 1)
    if process.get("redis") is not None:  # scale-out (webnn.cluster): the `cluster` extra
        from webnn.cluster.commands import serve_cluster

        serve_cluster(plans, process, console=console)
        return
    command = None
    if process["local_workers"] > 0:
        try:
            command = check_worker_setup(worker_dir(plans[0].config.client_dir))
        except WorkerError as exc:
            raise click.ClickException(str(exc)) from exc
    app, model_apps = build_root_app(plans)
    try:
        admin_token.save()
    except OSError as exc:
        raise click.ClickException(f"cannot keep the admin token in {admin_token.path}: {exc}"
                                   ) from exc

    def statuses() -> dict[str, dict[str, Any]]:
        from webnn.server.keys import COORDINATOR

        return {name: model_app[COORDINATOR].status() for name, model_app in model_apps.items()}

    def workers(base: str) -> LocalWorkers | None:
        if command is None:
            return None
        urls = {p.name: f"{base}{p.prefix or '/'}" for p in plans}
        specs_ = worker_specs(urls, process["local_workers"], process["worker_backend"],
                              process.get("join_token"))
        hint = "" if verbose else " (--verbose: a line per task)"
        console.info("webnn", f"starting {len(specs_)} local worker(s); watch them train on "
                              f"the dashboard{hint}")
        return LocalWorkers(command=command, specs=specs_, say=console.emit,
                            extra_args=() if verbose else ("--quiet",))

    def on_listening(base: str, listen: str) -> None:
        print_banner(base, plans, admin_token, listen, process.get("state_dir"), console)

    try:
        run_on_loop(run_server(app, process["host"], process["port"], on_listening, workers,
                               console, statuses, http_limits(process)),
                    process.get("loop", "auto"))
    except LoopUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:  # e.g. the port is taken
        where = f"{process['host']}:{process['port']}"
        raise click.ClickException(f"cannot listen on {where}: {exc}") from exc
    console.info("webnn", "stopped" + (f"; state saved in {process['state_dir']}"
                                       if process.get("state_dir") else "; nothing was kept"))


@click.command()
@click.argument("state_dir", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["tfjs", "keras"]), default="tfjs",
              show_default=True,
              help="tfjs: a TF.js layers model (OUT is a directory: model.json + weights.bin); "
                   "keras: a Keras model file (OUT ends in .h5 or .keras; needs webnn[keras]).")
@click.option("--overwrite", is_flag=True, help="keras: replace OUT if it exists.")
def export(state_dir: Path, out: Path, fmt: str, overwrite: bool) -> None:
    """Export the current (or final) model of the run in STATE_DIR to OUT."""
    if fmt == "keras":
        from webnn.interop_commands import export_keras_file

        export_keras_file(state_dir, out, overwrite)
        return
    from webnn.server.export import export_state_dir

    if not state_dir.is_dir():
        raise click.ClickException(f"{state_dir}: no such state directory")
    if out.is_file():
        raise click.ClickException(f"{out}: is a file; a TF.js export needs a directory")
    try:
        written = export_state_dir(state_dir, out)
    except (OSError, ValueError, LookupError) as exc:
        models = sorted(str(p) for p in state_dir.iterdir() if (p / "CURRENT").is_file())
        hint = ""
        if models:  # the state dir of a several-model run: one state subdirectory per model
            hint = f"; export one model's state directory: {', '.join(models)}"
        raise click.ClickException(f"{exc}{hint}") from exc
    for path in written:
        echo(f"wrote {path}")
    echo(f"webnn: exported {state_dir} as a TF.js model in {out}")
