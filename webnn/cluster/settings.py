"""The settings of a scale-out run (``wnn serve --redis URL ...``), beside its `ServeConfig`:
declared once in `webnn.settings.cluster` (the command line, TOML files and docs/settings.md
read the same declarations); re-exported here for the cluster package and embedding code."""

from __future__ import annotations

from webnn.settings.cluster import (
    MAX_COMBINE,
    ROLES,
    ClusterSettings,
    ClusterSettingsError,
    kept_versions,
)

__all__ = ["MAX_COMBINE", "ROLES", "ClusterSettings", "ClusterSettingsError", "kept_versions"]
