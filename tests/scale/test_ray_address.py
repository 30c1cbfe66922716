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


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def test_an_address_where_no_ray_listens_is_one_error_at_once(tmp_path, monkeypatch):
    """``ray.init`` would retry the GCS of a ``host:port`` that takes no connection for minutes; the
    executor refuses it at once, naming the setting and the fix, before starting anything."""
    ray = pytest.importorskip("ray")
    called = []

    def init(**kwargs):
        # Without the executor's own check, ray.init would be reached here; it would retry the GCS for
        # minutes and end in a ConnectionError, which the executor turns into the same error text.
        called.append(kwargs.get("address"))
        raise ConnectionError("ray.init was called")

    monkeypatch.setattr(ray, "init", init)
    address = f"127.0.0.1:{_closed_port()}"
    ex = get_executor("ray", Catalog(tmp_path / "cat.duckdb"), address=address)
    with pytest.raises(ConfigError) as err:
        ex._init_ray()
    text = str(err.value)
    assert text.startswith(f"ray_address = {address}: no Ray cluster answers at {address}")
    assert "ray start --head" in text and "leave ray_address out" in text
    assert called == [], "refused only after ray.init was called, not before starting anything"
    assert "ray.init was called" not in text
    assert not ray.is_initialized()


def test_auto_with_no_ray_running_is_one_error(tmp_path, monkeypatch):
    """``ray_address = "auto"`` and no Ray on the machine: Ray's ConnectionError (a traceback of 78 lines
    through the CLI) becomes one error naming the setting."""
    ray = pytest.importorskip("ray")

    def no_ray(**kwargs):
        assert kwargs["address"] == "auto"
        raise ConnectionError("Could not find any running Ray instance. Please specify the one to connect to.")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", no_ray)
    ex = get_executor("ray", Catalog(tmp_path / "cat.duckdb"), address="auto")
    with pytest.raises(ConfigError) as err:
        ex._init_ray()
    text = str(err.value)
    assert text.startswith("ray_address = auto: no Ray cluster answers at auto (Could not find any running")
    assert "\n" not in text
