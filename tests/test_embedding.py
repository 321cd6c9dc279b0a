"""The embedding example (examples/embed.py, shown in docs/embedding.md), run as it is: the
user's own route and the training app mounted at /training/ both answer on one real loopback
server."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import aiohttp
import numpy as np
from aiohttp import web
from support.protocol_client import ProtocolClient

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "embed.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("webnn_embed_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_embedded_training_app_works_under_its_prefix(tmp_path: Path) -> None:
    site = load_example().make_app(state_dir=tmp_path / "state")
    runner = web.AppRunner(site)
    await runner.setup()
    try:
        tcp = web.TCPSite(runner, "127.0.0.1", 0)
        await tcp.start()
        host, port = runner.addresses[0][:2]
        base = f"http://{host}:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/") as response:  # the user's own route
                assert response.status == 200
                assert "My site" in await response.text()
            async with http.get(f"{base}/training/") as response:  # the volunteer page
                assert response.status == 200
                assert "text/html" in response.headers["Content-Type"]

            client = ProtocolClient(http, f"{base}/training/")
            joined = await client.join(name="embedded")
            assert joined["model"]["name"] == "digits_mlp"
            task = None
            while task is None:  # evaluation of the initial model may come first
                task = (await client.task("train"))["task"]
                if task is None:
                    await client.evaluate_all()
            for url in task["urls"].values():
                assert url.startswith("/training/api/v1/"), url
            weights = await client.weights_array(task["urls"]["weights"])
            await client.batch(task)
            answer = await client.submit_update(task, weights + np.float32(0.01))
            assert answer.status == 200 and answer.body["merged"], answer.body
            status = (await client.get("api/v1/status")).body
            assert status["merges"] == 1
    finally:
        await runner.cleanup()
    assert (tmp_path / "state" / "CURRENT").is_file()  # cleanup wrote the checkpoint


def test_the_docs_show_the_example_word_for_word() -> None:
    readme = (EXAMPLE.parent.parent / "docs" / "embedding.md").read_text(encoding="utf-8")
    shown = readme.split("<!-- embed.py -->\n```python\n", 1)[1].split("```", 1)[0]
    code = EXAMPLE.read_text(encoding="utf-8")
    assert shown == code[code.index("from __future__"):].rstrip() + "\n"
