"""Snapshots of every environment's templates, in both compliance profiles (`prod-strict-...`): a change
detector, so a PR shows its template diff.

Asset hashes and CDK analytics are masked (tests/infra/template_tools.py) so the snapshots are identical
on every machine. After an intended change: `make snapshot-update`, then review and commit the diff."""

from __future__ import annotations

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from tests.infra.conftest import Synthesized
from tests.infra.template_tools import mask_volatile


@pytest.fixture
def json_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("which", ["stateful", "pipeline"])
def test_template_snapshot(synth: Synthesized, which: str, json_snapshot: SnapshotAssertion) -> None:
    assert mask_volatile(synth.template(which)) == json_snapshot(name=f"{synth.variant}-{which}")
