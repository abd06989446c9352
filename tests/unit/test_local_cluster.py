"""The local cluster's layout and the config it writes, without starting anything."""

from __future__ import annotations

import tomllib

import pytest

from fink_broker.config import ConfigError, Settings, load_settings
from fink_broker.infra import hdfs_local, kafka_cluster, local_cluster
from fink_broker.infra.shutdown import stop_rank


def test_ports_are_consecutive_and_distinct():
    settings = Settings()
    settings.local_cluster.workers, settings.local_cluster.brokers = 3, 5
    ports = local_cluster.plan_ports(settings, 21000)
    used = ports.all()
    assert len(used) == local_cluster.port_count(settings) == 2 + 6 + 10 + 6
    assert used == list(range(21000, 21000 + len(used)))


@pytest.mark.parametrize(
    ("brokers", "replication", "min_isr"), [(3, 4, 2), (3, 2, 3), (1, 1, 0), (0, 1, 1)]
)
def test_impossible_replication_is_refused(brokers, replication, min_isr):
    settings = Settings()
    lc = settings.local_cluster
    lc.brokers, lc.replication_factor, lc.min_insync_replicas = brokers, replication, min_isr
    with pytest.raises(ConfigError):
        local_cluster.check(settings)


def test_config_points_at_the_cluster_and_keeps_other_options(tmp_path, monkeypatch):
    path = tmp_path / "fink.toml"
    path.write_text('[raw2science]\nztf_rb_min = 0.7\n[spark]\nextra = {"spark.x" = "1"}\n')
    monkeypatch.setenv("FINK_STREAM2RAW_TOPIC", "from_my_shell")
    settings = load_settings(None, env={}, overrides={"paths.state_dir": str(tmp_path / "s")})
    ports = local_cluster.plan_ports(settings, 22000)
    local_cluster.write_config(path, settings, ports)
    written = tomllib.loads(path.read_text())
    assert written["spark"]["master"] == "spark://127.0.0.1:22000"
    brokers = written["kafka"]["bootstrap_servers"]
    assert brokers == "127.0.0.1:22006,127.0.0.1:22008,127.0.0.1:22010"
    assert written["paths"]["root"] == "hdfs://127.0.0.1:22012/fink"
    assert written["paths"]["state_dir"] == str(tmp_path / "s")
    assert written["local_cluster"]["base_port"] == 22000
    assert written["raw2science"]["ztf_rb_min"] == 0.7
    extra = written["spark"]["extra"]
    assert extra["spark.x"] == "1" and extra["spark.driver.bindAddress"] == "127.0.0.1"
    assert extra["spark.executor.memory"] == "1g" and extra["spark.hadoop.dfs.replication"] == "1"
    assert written["stream2raw"]["topic"] == "", "the shell's FINK_* variables stay out"
    again = load_settings(path, env={})
    assert local_cluster.endpoints(again) == {
        "spark.master": again.spark.master,
        "kafka.bootstrap_servers": again.kafka.bootstrap_servers,
        "paths.root": again.paths.root,
    }


def test_brokers_share_the_quorum_and_need_two_in_sync_replicas():
    settings = Settings()
    ports = local_cluster.plan_ports(settings, 23000).kafka
    texts = [kafka_cluster.broker_properties(settings, n, ports) for n in (1, 2, 3)]
    props = [dict(line.split("=", 1) for line in t.splitlines()[1:]) for t in texts]
    assert len({p["controller.quorum.voters"] for p in props}) == 1
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    for p in props:
        assert p["min.insync.replicas"] == "2" and p["offsets.topic.replication.factor"] == "3"
        assert p["unclean.leader.election.enable"] == "false"
        assert all("127.0.0.1:" in a for a in p["listeners"].split(","))


def test_hdfs_listens_on_loopback_with_one_replica(tmp_path):
    settings = load_settings(None, env={}, overrides={"paths.state_dir": str(tmp_path)})
    ports = local_cluster.plan_ports(settings, 24000).hdfs
    site = hdfs_local.hdfs_site(settings, ports)
    addresses = [v for k, v in site.items() if k.endswith("address")]
    assert addresses and all(a.startswith("127.0.0.1:") for a in addresses)
    assert site["dfs.replication"] == "1"
    assert hdfs_local.core_site(settings, ports)["fs.defaultFS"] == "hdfs://127.0.0.1:24012"
    assert str(tmp_path) in site["dfs.namenode.name.dir"]


def test_stop_order_puts_services_before_the_systems_they_write_to():
    names = ["hdfs_namenode", "kafka_1", "spark_master", "hbase", "archive", "spark_worker_1"]
    names += ["hdfs_datanode", "stream2raw", "kafka"]
    ordered = sorted(names, key=lambda n: (stop_rank(n), n))
    assert ordered == [
        "archive",
        "stream2raw",
        "spark_worker_1",
        "spark_master",
        "hbase",
        "kafka",
        "kafka_1",
        "hdfs_datanode",
        "hdfs_namenode",
    ]


def test_simulator_flag_uses_the_single_broker_without_a_running_cluster(tmp_path):
    settings = load_settings(
        None, env={}, overrides={"paths.state_dir": str(tmp_path), "local_kafka.port": 9392}
    )
    settings.local_cluster.base_port = 25000  # a config written by `fink cluster start`
    assert local_cluster.local_bootstrap(settings) == "127.0.0.1:9392"
