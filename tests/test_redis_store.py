"""RedisStore: the seed's maxmemory per tier, no persistence, noeviction, auth by reference, cluster."""

from __future__ import annotations

import pytest

from tests.helpers import by, container, env_from, env_map, kinds, synth_env


@pytest.mark.parametrize(
    "release, maxmemory",
    [
        ("client-demo", "1536mb"),
        ("iotistica-starter", "512mb"),
        ("iotistica", "2048mb"),
        ("iotistica-enterprise", "8192mb"),
    ],
)
def test_redis_conf_per_tier(manifests, release, maxmemory) -> None:
    conf = by(manifests[release], "ConfigMap", f"{release}-redis")["data"]["redis.conf"]
    lines = conf.splitlines()
    assert f"maxmemory {maxmemory}" in lines  # seed: 1,536 MB / 512 MB / 2 GB / 8 GB
    assert "maxmemory-policy noeviction" in lines
    assert 'save ""' in lines and "appendonly no" in lines  # RDB and AOF explicitly off


@pytest.mark.parametrize("release", ["client-demo", "iotistica-starter", "iotistica"])
def test_standalone_redis_is_a_deployment(manifests, release) -> None:
    objs = manifests[release]
    dep = by(objs, "Deployment", f"{release}-redis")  # kubectl exec deploy/<release>-redis
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"] == {"type": "Recreate"}
    assert dep["metadata"]["labels"]["app.kubernetes.io/component"] == "redis"
    assert not kinds(objs, "StatefulSet") or all(
        s["metadata"]["name"] != f"{release}-redis" for s in kinds(objs, "StatefulSet")
    )


def test_demo_resources_from_seed(manifests) -> None:
    c = container(by(manifests["client-demo"], "Deployment", "client-demo-redis"))
    assert c["resources"] == {"requests": {"cpu": "100m", "memory": "1Gi"}, "limits": {"cpu": "250m", "memory": "2Gi"}}


def test_password_only_referenced(manifests) -> None:
    c = container(by(manifests["client-demo"], "Deployment", "client-demo-redis"))
    env = env_map(c)
    assert env["REDIS_PASSWORD"] == {"secretKeyRef": {"name": "client-demo-redis-auth", "key": "password"}}
    assert c["args"] == ["/etc/redis/redis.conf", "--dir", "/data", "--requirepass", "$(REDIS_PASSWORD)"]
    assert not kinds(manifests["client-demo"], "Secret")


def test_auth_disabled_has_no_password() -> None:
    objs = synth_env(env_from("client-demo", redis={"auth": {"enabled": False}}))
    c = container(by(objs, "Deployment", "client-demo-redis"))
    assert c["args"] == ["/etc/redis/redis.conf", "--dir", "/data"] and "env" not in c
    assert "REDIS_PASSWORD" not in env_map(container(by(objs, "Deployment", "client-demo-api")))


def test_config_checksum_rolls_pods() -> None:
    a = by(synth_env(env_from("client-demo")), "Deployment", "client-demo-redis")
    b = by(synth_env(env_from("client-demo", redis={"maxmemoryMb": 1024})), "Deployment", "client-demo-redis")
    key = "checksum/config"
    assert (
        a["spec"]["template"]["metadata"]["annotations"][key] != b["spec"]["template"]["metadata"]["annotations"][key]
    )


def test_enterprise_redis_cluster(manifests) -> None:
    objs = manifests["iotistica-enterprise"]
    sts = by(objs, "StatefulSet", "iotistica-enterprise-redis")
    assert sts["spec"]["replicas"] == 6  # 3 masters + 1 replica each
    assert sts["spec"]["serviceName"] == "iotistica-enterprise-redis-headless"
    headless = by(objs, "Service", "iotistica-enterprise-redis-headless")["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    assert {p["port"] for p in headless["ports"]} == {6379, 16379, 9121}  # 9121: redis_exporter
    conf = by(objs, "ConfigMap", "iotistica-enterprise-redis")["data"]
    assert "cluster-enabled yes" in conf["redis.conf"].splitlines()
    assert "redis-cluster-bootstrap.sh" in conf
    c = container(sts, "redis")
    assert "--cluster-announce-ip" in c["args"] and "--masterauth" in c["args"]
    job = by(objs, "Job", "iotistica-enterprise-redis-cluster-init")
    assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PostSync"
    jenv = env_map(container(job))
    nodes = jenv["REDIS_NODES"].split()
    assert len(nodes) == 6 and nodes[0] == (
        "iotistica-enterprise-redis-0.iotistica-enterprise-redis-headless.iotistica-enterprise.svc.cluster.local:6379"
    )
    assert jenv["REDIS_CLUSTER_REPLICAS"] == "1"
    assert by(objs, "PodDisruptionBudget", "iotistica-enterprise-redis")["spec"]["maxUnavailable"] == 1
    assert not [d for d in kinds(objs, "Deployment") if d["metadata"]["name"] == "iotistica-enterprise-redis"]
