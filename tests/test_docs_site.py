"""The documentation site builds strictly (mkdocs.yml at the repository root).

`mkdocs build --strict` fails on a link to a missing page or file, a missing `#anchor`, a page in
docs/ left out of the nav, and (through docs/_hooks/readme_links.py) a broken link in README.md.
`make test` runs the build as its own step (`make docs`) and deselects this copy (marker `docs`);
it is here so that `make check` catches a broken link too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.docs


def build(site_dir: Path, config: Path = ROOT / "mkdocs.yml") -> subprocess.CompletedProcess[str]:
    """`python -m mkdocs build --strict` of `config` into `site_dir`, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
         "--site-dir", str(site_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    result = build(tmp_path / "site")
    assert result.returncode == 0, result.stderr[-4000:]
    site = tmp_path / "site"
    for page in ("index.html", "getting-started.html", "serving.html", "protocol.html",
                 "img/dashboard.png"):
        assert (site / page).is_file(), page
    # the README's picture and its links into the site are pages and files that exist
    assert "img/dashboard.png" in (site / "index.html").read_text(encoding="utf-8")


def test_a_broken_anchor_fails_the_build(tmp_path: Path) -> None:
    """The strict build really checks anchors and the nav: a copy of the docs with one bad link and
    one page outside the nav is refused, and the log names both."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [options](other.md#no-such-heading).\n")
    (docs / "other.md").write_text("# Other\n\n## Options\n")
    (docs / "stray.md").write_text("# Stray\n")
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    config = config.split("\nnav:\n", 1)[0] + "\nnav:\n  - Home: index.md\n  - Other: other.md\n"
    config = config.replace("hooks:\n  - docs/_hooks/readme_links.py\n", "")
    (tmp_path / "mkdocs.yml").write_text(config)
    result = build(tmp_path / "site", tmp_path / "mkdocs.yml")
    assert result.returncode != 0
    assert "'#no-such-heading'" in result.stderr, result.stderr[-4000:]
    assert "stray.md" in result.stderr, result.stderr[-4000:]
