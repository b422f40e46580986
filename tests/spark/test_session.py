"""The Spark session's driver ports: Spark's choice unless they are set."""

from __future__ import annotations

import socket
from contextlib import closing
from pathlib import Path

import pytest

from healthcode.config import get_settings
from healthcode.errors import ConfigurationError


@pytest.fixture(autouse=True)
def fresh_settings():
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_driver_ports_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("HEALTHCODE_SPARK_DRIVER_PORT", "7860")
    monkeypatch.setenv("HEALTHCODE_SPARK_BLOCK_MANAGER_PORT", "7870")

    settings = get_settings()

    assert (settings.spark_driver_port, settings.spark_block_manager_port) == (
        7860,
        7870,
    )


def test_a_port_out_of_range_is_refused_naming_the_variable(monkeypatch):
    monkeypatch.setenv("HEALTHCODE_SPARK_DRIVER_PORT", "70000")

    with pytest.raises(ConfigurationError, match="HEALTHCODE_SPARK_DRIVER_PORT"):
        get_settings()


def test_unset_ports_are_free_ones_spark_took_on_the_loopback(spark):
    low, high = map(
        int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    )

    port = int(spark.sparkContext.getConf().get("spark.driver.port"))

    assert low <= port <= high
    with closing(socket.create_connection(("127.0.0.1", port), timeout=5)):
        pass
