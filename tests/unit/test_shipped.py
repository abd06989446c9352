"""What a cluster's driver sends its executors, and that no driver path travels with code."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pyspark import cloudpickle

from fink_broker.config import ConfigError, KafkaSettings, load_settings
from fink_broker.engine.kafka_options import spark_producer_options
from fink_broker.engine.shipped import executor_python, shipped_settings
from fink_broker.kafka_clients import producer_delivery
from fink_broker.plugins import discover
from fink_broker.science import local_catalogues
from fink_broker.simulator.kafka_producer import producer_config

CLUSTER = "spark://127.0.0.1:7077"


def settings_for(tmp_path: Path, master: str, **more):
    overrides = {"spark.master": master, "paths.state_dir": str(tmp_path / "state"), **more}
    return load_settings(None, env={}, overrides=overrides)


@pytest.fixture
def catalogue(tmp_path):
    source = tmp_path / "mine.csv"
    source.write_text("ra,dec,id\n10.0,20.0,a\n11.0,-5.0,b\n")
    folder = tmp_path / "state" / "catalogues"
    return local_catalogues.add(folder, "mine", source, 2.0, class_col=None, default_class="x")


def test_local_mode_ships_nothing(tmp_path, catalogue):
    settings = settings_for(tmp_path, "local[2]")
    assert shipped_settings(settings) == {}
    assert executor_python(settings) is None
    module = local_catalogues.local_module(settings)
    assert module is not None


def test_cluster_ships_the_environment_and_the_catalogues(tmp_path, catalogue):
    settings = settings_for(tmp_path, CLUSTER)
    archive = tmp_path / "env.tar.gz"
    out = shipped_settings(settings, archive)
    assert out == {"spark.archives": f"{archive}#fink_python", "spark.files": catalogue.file}
    assert executor_python(settings) == "./fink_python/bin/python"
    chosen = settings_for(tmp_path, CLUSTER, **{"spark.python_archive": "hdfs://nn/env.tgz"})
    assert shipped_settings(chosen)["spark.archives"] == "hdfs://nn/env.tgz#fink_python"
    off = settings_for(tmp_path, CLUSTER, **{"spark.ship_python": False})
    assert "spark.archives" not in shipped_settings(off) and executor_python(off) is None


def test_pickled_modules_carry_no_path_of_the_driver_s_environment(tmp_path, catalogue):
    """Tasks carry the modules pickled by value: a catalogue path resolved on the driver
    would make every executor read the driver's disk."""
    settings = settings_for(tmp_path, CLUSTER)
    modules = dict(discover())
    local = local_catalogues.local_module(settings)
    assert local is not None
    modules[local.name] = local
    for name, module in modules.items():
        pickled = cloudpickle.dumps(module)
        assert sys.prefix.encode() not in pickled, name
        assert str(tmp_path).encode() not in pickled, name
    files = [f for c in local.function.__closure__[0].cell_contents for f in c.files()]
    assert files == [Path(catalogue.file).name]


def test_producers_wait_for_the_in_sync_replicas():
    kafka = KafkaSettings(bootstrap_servers="b:1", delivery_timeout_ms=60000)
    for config in (producer_config(kafka), producer_delivery(kafka)):
        assert config["acks"] == "all" and config["enable.idempotence"] is True
        assert config["delivery.timeout.ms"] == 60000
    spark = spark_producer_options(kafka)
    assert spark["kafka.acks"] == "all" and spark["kafka.enable.idempotence"] == "true"
    assert spark["kafka.delivery.timeout.ms"] == "60000"


@pytest.mark.parametrize(
    "change", [{"acks": "1"}, {"delivery_timeout_ms": 1000, "request_timeout_ms": 30000}]
)
def test_producer_settings_that_cannot_hold_are_refused(change):
    with pytest.raises(ConfigError):
        producer_delivery(KafkaSettings(**change))
