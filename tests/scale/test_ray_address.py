"""The Ray executor's driver is a node of the cluster: a Ray Client address (``ray://``) is refused with one
error naming the setting and the fix, before Ray is imported or started."""

from __future__ import annotations

import sys

import pytest

from clipfactory.catalog import Catalog
from clipfactory.errors import ConfigError
from clipfactory.executors import get_executor


@pytest.mark.parametrize("address", ["ray://head-host:10001", " RAY://10.0.0.5:10001"])
def test_a_ray_client_address_is_refused_naming_the_setting(tmp_path, monkeypatch, address):
    # Ray cannot be imported here (an ``import ray`` raises ImportError, which would be a MissingExtraError,
    # not this ConfigError), whether or not an earlier test of this process imported it.
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError) as err:
        get_executor("ray", Catalog(tmp_path / "cat.duckdb"), address=address)
    text = str(err.value)
    assert text.startswith(f"ray_address = {address}: ")
    assert 'ray_address = "auto"' in text and "head node" in text
