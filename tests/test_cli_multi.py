"""Several models in one `wnn serve` process from a TOML file: the index page lists both, each
model's API works under /models/<name>/ independently, and each has its own state subdirectory."""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp
from support.serve_cli import (
    DIGITS_DATA,
    DIGITS_SPEC,
    ServeProcess,
    start_serve,
    train,
)

CONFIG = """
data = "{data}"
state_dir = "state"
seed = 5

[[models]]
name = "plain"
spec = "{spec}"
strategy = "average"

[[models]]
name = "async"
spec = "{spec}"
strategy = "fedasync"
"""


async def test_two_models_in_one_process(
    tmp_path: Path, processes: list[ServeProcess]
) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(CONFIG.format(data=DIGITS_DATA, spec=DIGITS_SPEC))
    served = start_serve("--config", str(config), url_label="index")
    processes.append(served)
    index = served.url
    assert served.find(rf"plain: volunteer page {index}models/plain/")
    assert served.find(rf"async: volunteer page {index}models/async/")

    status, _ = await train(f"{index}models/plain/", updates=2)
    assert status["merges"] == 2 and status["strategy"]["name"] == "average"

    async with aiohttp.ClientSession() as http:
        async with http.get(index) as response:
            page = await response.text()
        assert response.status == 200
        for name in ("plain", "async"):
            assert f'href="models/{name}/"' in page and f'href="models/{name}/dashboard"' in page
        async with http.get(f"{index}models.json") as response:
            listed = {m["name"]: m for m in (await response.json())["models"]}
        assert listed["plain"]["merges"] == 2 and listed["plain"]["version"] == status["version"]
        assert listed["async"]["merges"] == 0  # the other model is untouched
        assert listed["async"]["url"] == "/models/async/"
        async with http.get(f"{index}models/async", allow_redirects=False) as response:
            assert response.status == 302 and response.headers["Location"] == "/models/async/"
        async with http.get(f"{index}models/async/api/v1/status") as response:
            assert (await response.json())["strategy"]["name"] == "fedasync"

    other, _ = await train(f"{index}models/async/", updates=1)
    assert other["merges"] == 1

    assert served.stop(signal.SIGTERM) == 0, served.output()
    for name in ("plain", "async"):
        assert (tmp_path / "state" / name / "CURRENT").is_file(), name
