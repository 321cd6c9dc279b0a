"""mkdocs hook: README.md's relative links must resolve, checked at every `mkdocs build`.

README.md is not a page of the site, so mkdocs does not look at its links. After the build this
hook reads it and, for each relative link or image outside code, checks that the file exists in the
checkout and, for a link into a docs page with `#anchor`, that the built page has an element with
that id. Each broken link is logged as a warning, which `mkdocs build --strict` turns into a failed
build (the anchors are the site's, the ones a reader following the link lands on).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.readme_links")

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def readme_links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every Markdown link or image outside fenced code and code spans."""
    found: list[tuple[int, str]] = []
    in_fence = False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line.lstrip()):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        prose = re.sub(r"`[^`]*`", "", line)
        found.extend((number, match.group(1)) for match in LINK.finditer(prose))
    return found


def built_page(site_dir: Path, docs_rel: str, directory_urls: bool) -> Path:
    """The HTML file mkdocs writes for docs page `docs_rel`: foo.md -> foo.html, or foo/index.html
    with use_directory_urls."""
    stem = docs_rel[: -len(".md")]
    if not directory_urls or stem == "index" or stem.endswith("/index"):
        return site_dir / (stem + ".html")
    return site_dir / stem / "index.html"


def on_post_build(config: Any, **kwargs: Any) -> None:
    root = Path(config.config_file_path).resolve().parent
    docs_dir = Path(config.docs_dir).resolve()
    site_dir = Path(config.site_dir).resolve()
    readme = root / "README.md"
    for number, target in readme_links(readme.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # external (http:, mailto:) or an anchor inside README itself
        path, _, anchor = target.partition("#")
        where = f"README.md:{number}: link '{target}'"
        file = (root / path).resolve()
        if not file.exists():
            log.warning(f"{where}: no file {path}")
            continue
        if not anchor:
            continue
        if file.suffix != ".md" or not file.is_relative_to(docs_dir):
            log.warning(f"{where}: an anchor can only be checked in a docs page")
            continue
        html = built_page(site_dir, file.relative_to(docs_dir).as_posix(),
                          bool(config.use_directory_urls))
        if not html.exists():
            log.warning(f"{where}: {path} is not built into the site (is it in the nav?)")
        elif f'id="{anchor}"' not in html.read_text(encoding="utf-8"):
            log.warning(f"{where}: the page {path} has no anchor #{anchor}")
