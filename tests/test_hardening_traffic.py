"""Traffic figures (status ``traffic``: update bodies received and weights sent, per encoding)
are counted once per merged update (a concurrent copy or a retry of one update brought no bytes
that were merged) and survive a restart (they are checkpointed). Real server, real HTTP."""

from __future__ import annotations

import asyncio

import numpy as np
from support.protocol_client import ProtocolClient, encode_frame

from webnn.server.app import create_app
from webnn.server.frames import CONTENT_TYPE as FRAME_TYPE


async def _frame(client: ProtocolClient) -> tuple[dict, bytes]:
    task = (await client.task("train"))["task"]
    weights = await client.weights_array(task["urls"]["weights"])
    frame = encode_frame({"baseVersion": task["version"], "steps": task["localSteps"],
                          "loss": 1.0, "accuracy": 0.5}, {"weights": weights + 0.001})
    return task, frame


async def _traffic(client: ProtocolClient) -> dict:
    return (await client.get("api/v1/status")).body["traffic"]


async def test_copies_and_retries_of_one_update_count_its_bytes_once(make_config, serve, http):
    """A copy whose body is still arriving while another copy of the same update is merged reads
    its body too, then shares the merged copy's verdict: one update, counted once; a retry after
    the answer is answered from the stored result and counts nothing either."""
    served = await serve(create_app(make_config(evaluate_initial=False, update_encoding="f32")))
    client = ProtocolClient(http, served.url)
    await client.join()
    task, frame = await _frame(client)
    host, port = served.url.split("//")[1].rstrip("/").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (f"POST {task['urls']['submit']} HTTP/1.1\r\nHost: {host}\r\n"
            f"X-WebNN-Session: {client.token}\r\nContent-Type: {FRAME_TYPE}\r\n"
            f"Content-Length: {len(frame)}\r\nConnection: close\r\n\r\n").encode()
    writer.write(head + frame[:64])  # the slow copy: its body is being read...
    await writer.drain()
    other = await client.request("POST", task["urls"]["submit"], data=frame,
                                 content_type=FRAME_TYPE)  # ...when the fast copy is merged
    assert other.status == 200, other.body
    writer.write(frame[64:])
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    assert raw.startswith(b"HTTP/1.1 200"), raw[:300]
    retry = await client.request("POST", task["urls"]["submit"], data=frame,
                                 content_type=FRAME_TYPE)
    assert retry.status == 200 and retry.body == other.body
    updates = (await _traffic(client))["updates"]
    assert updates == {"f32": {"count": 1, "bytes": len(frame), "meanBytes": len(frame)}}
    status = (await client.get("api/v1/status")).body
    assert status["merges"] == 1


async def test_traffic_survives_a_restart(make_config, serve, http, tmp_path):
    config = make_config(evaluate_initial=False, update_encoding="f32",
                         state_dir=tmp_path / "state")
    served = await serve(create_app(config))
    client = ProtocolClient(http, served.url)
    await client.join()
    for _ in range(2):
        task, frame = await _frame(client)
        answer = await client.request("POST", task["urls"]["submit"], data=frame,
                                      content_type=FRAME_TYPE)
        assert answer.status == 200, answer.body
    before = await _traffic(client)
    assert before["updates"]["f32"]["count"] == 2 and before["weights"]
    await served.stop()  # cleanup writes the final checkpoint

    again = await serve(create_app(config))
    after = await _traffic(ProtocolClient(http, again.url))
    assert after == before
    assert np.isfinite(after["updates"]["f32"]["meanBytes"])
