"""Which version snapshots the server holds: the current one, and older ones while referenced."""

from __future__ import annotations

import pytest

from webnn.server.versions import Snapshot, VersionSnapshots


def snap(tag: int) -> Snapshot:
    return Snapshot(bytes([tag]), steps=tag * 10)


def test_current_is_always_held_and_old_ones_only_while_referenced() -> None:
    versions = VersionSnapshots(0, snap(0))
    versions.hold(0)                      # a lease starts from version 0
    versions.advance(1, snap(1))          # a merge makes version 1
    assert 0 in versions and 1 in versions
    assert versions.get(0) == snap(0)
    versions.release(0)                   # the lease's update is merged: 0 is gone
    assert 0 not in versions and versions.get(1).steps == 10
    versions.advance(2, snap(2))          # nobody holds 1: replaced at once
    assert 1 not in versions and len(versions) == 1


def test_releasing_the_current_version_keeps_it() -> None:
    versions = VersionSnapshots(5, snap(5))
    versions.hold(5)
    versions.release(5)
    assert versions.get(5) == snap(5)


def test_several_references_and_re_added_versions() -> None:
    versions = VersionSnapshots(3, snap(3))
    versions.hold(3)
    versions.hold(3)
    versions.advance(4, snap(4))
    versions.release(3)
    assert 3 in versions
    versions.release(3)
    assert 3 not in versions
    versions.add(0, snap(0))              # e.g. the initial model, for its evaluation
    versions.hold(0)
    versions.release(0)
    assert 0 not in versions
    with pytest.raises(KeyError, match="version 9 is not held"):
        versions.hold(9)
