"""Fixtures shared by several test modules."""

import pytest


@pytest.fixture(scope="session")
def tiny_engines(tmp_path_factory):
    """Two tiny engines built by the real build path (squeezenet1_1 at 32x32, batches 1 and 2)."""
    from edgebench.engines.build import build_sweep
    from edgebench.engines.sweep import Sweep

    out = tmp_path_factory.mktemp("engines")
    report = build_sweep(Sweep(backbones=("squeezenet1_1",), batches=(1, 2), resolutions=((32, 32),)), out)
    assert report.ok
    return out
