"""docs/settings.md, written from the settings models (``wnn settings --markdown``).

One table per group of settings: ``wnn serve``'s process and model settings (TOML key, flag,
type, default, description), the ``partition`` table, the `ServeConfig` fields only embedding code
sets, every built-in strategy's parameters and every table of a ``wnn compare`` file. A test
checks that the page in docs/ is what `markdown()` writes now.
"""

from __future__ import annotations

import re
import typing
from typing import Any

import annotated_types
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from webnn.settings.core import info, key_of, show, type_label

HEADER = """# Settings reference

Every setting of webnn, generated from the settings models in `webnn/settings/`
(`wnn settings --markdown > docs/settings.md`; a test keeps this page current).

A `wnn serve` setting can be given three ways, with the same name, type and checks: a command-line
flag, a key of a serve TOML file (`wnn serve --config serve.toml`; flags override the file) and a
field of `ServeConfig` (embedding: `webnn.create_app(webnn.ServeConfig(...))`). Process settings
are one value per `wnn serve` process (the top level of a TOML file); model settings are one value
per served model (top level, or per `[[models]]` entry). Every problem is reported at once, each
with its dotted path (`models[1].eval_quorum: must be >= 1, got 0`), and an unknown key gets a
"did you mean".
"""


def _bounds(field: FieldInfo) -> list[str]:
    parts = []
    for item in field.metadata:
        for kind, attr, sign in ((annotated_types.Gt, "gt", ">"), (annotated_types.Ge, "ge", ">="),
                                 (annotated_types.Lt, "lt", "<"), (annotated_types.Le, "le", "<=")):
            if isinstance(item, kind):
                parts.append(f"{sign} {getattr(item, attr)}")
    return parts


def _type(field: FieldInfo) -> str:
    label = info(field).get("type_text") or type_label(field.annotation)
    label = label.removeprefix("a ").removeprefix("an ")
    bounds = _bounds(field)
    return label + (f", {' and '.join(bounds)}" if bounds else "")


def _default(field: FieldInfo) -> str:
    text = info(field).get("default_text")
    if text is not None:
        return str(text)
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    if field.default_factory is not None:
        try:
            value = field.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return ""
        if isinstance(value, dict):
            return "{}" if not value else show(value)
        return "defaults" if hasattr(value, "__dataclass_fields__") else show(value)
    return "unset" if field.default is None else show(field.default)


def _cell(text: str) -> str:
    """A table cell: pipes escaped, and ``<name>`` kept from reading as an HTML tag."""
    return re.sub(r"<(?=[A-Za-z/])", "&lt;", text.replace("|", "\\|").replace("\n", " "))


def _flag(key: str, field: FieldInfo, table_key: str | None = None) -> str:
    from webnn.settings.cli import flag_of

    cli = info(field).get("cli", True)
    if cli is False or not info(field).get("toml", True):
        return ""
    flag = flag_of(key, field)
    if table_key is not None and flag == "--" + key.replace("_", "-"):
        flag = f"--{table_key}-{key}".replace("_", "-")
    if isinstance(cli, dict) and cli.get("parse") == "pairs":
        flag += f" {cli.get('metavar', 'KEY=VALUE')}"
    return f"`{flag}`"


def _table(fields: dict[str, FieldInfo], *, flags: bool, table_key: str | None = None,
           prefix: str = "") -> list[str]:
    head = "| key | flag | type | default | description |" if flags else \
        "| key | type | default | description |"
    rows = [head, "|" + "---|" * (5 if flags else 4)]
    for name, field in fields.items():
        key = key_of(name, field)
        cells = [f"`{prefix}{key}`"]
        if flags:
            cells.append(_flag(key, field, table_key))
        cells += [_type(field), _default(field), field.description or ""]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return rows


def _select(model: Any, **wanted: Any) -> dict[str, FieldInfo]:
    fields: dict[str, FieldInfo] = getattr(model, "__pydantic_fields__", {})
    chosen = {}
    for name, field in fields.items():
        extra = info(field)
        if all(extra.get(k, {"toml": True, "scope": "model"}.get(k)) == v
               for k, v in wanted.items()):
            chosen[name] = field
    return chosen


def _strategies() -> list[str]:
    from webnn.merge.params import params_model
    from webnn.merge.registry import BUILTIN_STRATEGIES

    lines = ["## Strategy parameters", "",
             "Given as `--param KEY=VALUE` (values read as the declared type), a `[params]` table "
             "of a serve TOML file, `params` of a `[[strategies]]` entry of a compare file, or "
             "`ServeConfig(strategy_params=...)`. Problems are named "
             "`strategy.<name>.<param>` (or by their key path in a file).", ""]
    for cls in BUILTIN_STRATEGIES:
        lines += [f"### `{cls.name}`", "", cls.description, ""]
        model = params_model(cls.name, cls.params)
        if not model.model_fields:
            lines += ["No parameters.", ""]
            continue
        lines += _table(dict(model.model_fields), flags=False) + [""]
    return lines


def _compare() -> list[str]:
    from webnn.compare import config as compare

    lines = ["## `wnn compare` files", "",
             "The keys of a compare config file (`wnn compare experiment.toml`), table by "
             "table; see docs/compare.md for how runs use them.", "",
             "### Top level", ""]
    lines += _table(_select(compare.CompareFile), flags=False) + [""]
    for title, model in (("`[stop]`", compare.StopCondition),
                         ("`[evaluation]`", compare.EvaluationSchedule),
                         ("`[server]`", compare.ServerOptions),
                         ("`[[strategies]]`", compare.StrategyEntry),
                         ("`[[clients]]`", compare.ClientGroup),
                         ("`churn` (of a client group)", compare.Churn),
                         ("`[sweep]`", compare.Sweep)):
        summary = typing.cast(str, model.__doc__).split("\n\n")[0]
        lines += [f"### {title}", "", " ".join(summary.split()), ""]
        lines += _table(_select(model), flags=False) + [""]
    return lines


def schemas() -> dict[str, Any]:
    """The JSON schemas of the settings models (``wnn settings --json``)."""
    from pydantic import TypeAdapter

    from webnn.compare.config import CompareFile
    from webnn.settings.serve import ProcessSettings, ServeConfig

    def schema(model: Any) -> Any:
        try:
            return model.model_json_schema()
        except Exception:  # a field of an arbitrary type (a loaded spec): no JSON schema
            return TypeAdapter(model).json_schema(mode="serialization")

    return {"serve_process": ProcessSettings.model_json_schema(),
            "serve_model": _loose_schema(ServeConfig), "compare": schema(CompareFile)}


def _loose_schema(model: Any) -> dict[str, Any]:
    """A JSON schema of a model whose fields may hold objects (`ServeConfig.spec`): one
    property per field with its description, default and bounds."""
    properties = {}
    for name, field in model.model_fields.items():
        entry: dict[str, Any] = {"description": field.description or "", "type": _type(field)}
        default = _default(field)
        if default != "required":
            entry["default"] = default
        properties[key_of(name, field)] = entry
    return {"title": model.__name__, "type": "object", "properties": properties}


def markdown() -> str:
    """The settings reference page (docs/settings.md)."""
    from webnn.settings.serve import PartitionTable, ProcessSettings, ServeConfig

    lines = [HEADER, "## `wnn serve`: process settings", "",
             "One value per `wnn serve` process: the top level of a serve TOML file.", ""]
    process = {**_select(ProcessSettings), **_select(ServeConfig, scope="process", toml=True)}
    lines += _table(process, flags=True) + [""]
    lines += ["## `wnn serve`: model settings", "",
              "One value per served model: the top level of a serve TOML file (defaults for "
              "every `[[models]]` entry) or an entry's own. `spec` is the `SPEC` argument on "
              "the command line.", ""]
    lines += _table(_select(ServeConfig, scope="model", toml=True), flags=True) + [""]
    lines += ["### `partition`", "",
              "A kind name or a table; on the command line one flag per key.", ""]
    lines += _table(_select(PartitionTable), flags=True, table_key="partition",
                    prefix="partition.") + [""]
    lines += ["## `ServeConfig` only", "",
              "Fields that embedding code sets (`webnn.ServeConfig`), beside every model and "
              "process setting above (`params` is the field `strategy_params`).", ""]
    lines += _table(_select(ServeConfig, toml=False), flags=False) + [""]
    lines += _strategies()
    lines += _compare()
    return "\n".join(lines).rstrip() + "\n"
