"""`wnn compare`: run merge strategies side by side from a TOML config and report on them.

`config` (the TOML schema, dataclasses), `runner` (servers, workers, churn, latency), `browsers`
(Chromium tabs as clients), `results` (CSV/JSON per run), `summary`, `plots`, `html_report`,
`report` (re-rendering a results directory), `commands` (the click command).
"""

from webnn.compare.config import CompareConfig, ConfigError, load_config, parse_config
from webnn.compare.report import render_report

__all__ = ["CompareConfig", "ConfigError", "load_config", "parse_config", "render_report"]
