"""What a client with overlap asks of the server: one session holds two training leases of the
same version (it asked for its next task before sending this one's update). The first lease's
end must not take the version away from the second, which has not fetched it yet; once no lease
of the session may still fetch it, it goes as before."""

from __future__ import annotations

import numpy as np
from support.protocol_client import ProtocolClient

from webnn.server.app import create_app
from webnn.server.versions import Snapshot, VersionSnapshots


def test_a_lease_ending_keeps_the_fetches_its_sessions_other_leases_still_owe() -> None:
    versions = VersionSnapshots(0, Snapshot(np.zeros(4, np.float32), 0))
    versions.expect_fetch(0, "alice")    # lease 1 of version 0
    versions.fetched(0, "alice")         # lease 1 fetched it
    versions.expect_fetch(0, "alice")    # lease 2 of version 0 (overlap), not fetched yet
    versions.advance(1, Snapshot(np.ones(4, np.float32), 1))
    versions.forget_fetch(0, "alice", keep=1)  # lease 1 ends; lease 2 may still fetch
    assert 0 in versions
    versions.forget_fetch(0, "alice", keep=1)  # any number of times
    assert 0 in versions
    versions.forget_fetch(0, "alice", keep=0)  # lease 2 ends unfetched
    assert 0 not in versions and versions.nbytes == 16


async def test_two_leases_of_one_version_in_one_session(make_config, serve, http) -> None:
    served = await serve(create_app(make_config(evaluate_initial=False)))
    client = ProtocolClient(http, served.url)
    await client.join()
    first = (await client.task("train"))["task"]
    second = (await client.task("train"))["task"]  # asked for before the first's update
    assert first["version"] == second["version"] == 0
    weights = await client.weights_array(first["urls"]["weights"])
    answer = await client.submit_update(first, weights + 0.01)
    assert answer.body["accepted"] and answer.body["version"] == 1
    # the second lease still gets the weights it was leased with ...
    fetched = await client.weights(second["urls"]["weights"])
    assert fetched.status == 200
    later = await client.submit_update(second, weights + 0.02)
    assert later.body["accepted"] and later.body["staleness"] == 1  # overlap's cost
    # ... and once no lease may still fetch version 0, it is gone (average keeps no base)
    gone = await client.weights(second["urls"]["weights"])
    assert gone.status == 404 and gone.code == "unknown_version"
    await client.leave()
