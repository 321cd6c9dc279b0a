"""Exported models load in TF.js (`tf.loadLayersModel`) with the server's weights, in Node."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from support.protocol_client import ProtocolClient

from webnn.server.app import create_app
from webnn.server.export import export_tfjs

CLIENT_JS = Path(__file__).resolve().parent.parent / "client_js"

LOAD = """
import * as tf from '@tensorflow/tfjs';
const [url, token] = process.argv.slice(1);
const init = token ? {requestInit: {headers: {Authorization: `Bearer ${token}`}}} : {};
const model = await tf.loadLayersModel(url, init);
const flat = [];
for (const w of model.getWeights()) flat.push(...w.dataSync());
const probe = model.predict(tf.ones([1, 64])).dataSync();
const names = model.weights.map(w => w.name);
console.log(JSON.stringify({flat, probe: Array.from(probe), names}));
"""


async def _load_in_tfjs(url: str, token: str = "") -> dict:
    process = await asyncio.create_subprocess_exec(
        "node", "--input-type=module", "-e", LOAD, url, token, cwd=CLIENT_JS,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1])


@pytest.mark.skipif(not (CLIENT_JS / "node_modules" / "@tensorflow" / "tfjs").is_dir(),
                    reason="client_js/node_modules not installed")
async def test_export_endpoint_and_files_load_in_tfjs(make_config, serve, http, tmp_path,
                                                     digits_spec):
    served = await serve(create_app(make_config(evaluate_initial=False)), prefix="/m/")
    client = ProtocolClient(http, served.url)
    await client.join()
    assert (await client.train_once(np.random.default_rng(0), scale=0.5)).status == 200
    weights = await client.weights_array()
    loaded = await _load_in_tfjs(str(client.url("api/v1/export/model.json")), "admin-token-123")
    np.testing.assert_allclose(np.array(loaded["flat"], np.float32), weights, rtol=1e-6)
    assert len(loaded["probe"]) == 10 and abs(sum(loaded["probe"]) - 1) < 1e-4  # softmax
    # files written by export_tfjs, served statically, load the same
    paths = export_tfjs(digits_spec, weights, tmp_path / "out")
    assert sorted(p.name for p in paths) == ["model.json", "weights.bin"]
    from aiohttp import web

    files = web.Application()
    files.router.add_static("/", tmp_path / "out")
    static = await serve(files)
    from_files = await _load_in_tfjs(static.url + "model.json")
    assert from_files["flat"] == loaded["flat"] and from_files["probe"] == loaded["probe"]
