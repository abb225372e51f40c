"""IngestionService: env names the code reads, the seed's per-tier numbers, spool persistence rules."""

from __future__ import annotations

import pytest

from tests.helpers import by, container, env_from, env_map, kinds, synth_env

KIND = {
    "client-demo": "Deployment",
    "iotistica-starter": "Deployment",
    "iotistica": "Deployment",
    "iotistica-enterprise": "StatefulSet",
}


def workload(manifests, release):
    return by(manifests[release], KIND[release], f"{release}-ingestion")


@pytest.mark.parametrize(
    "release, workers, maxlen",
    [
        ("client-demo", "4", "10000"),
        ("iotistica-starter", "6", "60000"),
        ("iotistica", "10", "600000"),
        # 60 s at the rated 50,000 r/s: the environment file's departure from the seed's 1,200,000 (README)
        ("iotistica-enterprise", "20", "3000000"),
    ],
)
def test_workers_and_stream_maxlen_per_tier(manifests, release, workers, maxlen) -> None:
    env = env_map(container(workload(manifests, release)))
    assert env["WORKER_COUNT"] == workers  # seed: starter 6, standard 10, enterprise 20
    assert env["REDIS_INGESTION_STREAM_MAXLEN"] == maxlen  # seed: standard 600,000
    assert int(env["AUTOSCALE_MIN_WORKERS"]) <= int(workers) <= int(env["AUTOSCALE_MAX_WORKERS"])
    # the seed's workers per pod are the floor: the autoscaler retires only workers it added under lag (a retired
    # worker leaves its last entry pending for XAUTOCLAIM's 60 s, docs/environments.md)
    assert env["AUTOSCALE_MIN_WORKERS"] == workers


def test_seed_env_table(manifests) -> None:
    env = env_map(container(workload(manifests, "client-demo")))
    assert env["PORT"] == "3003"
    assert env["INGESTION_PROFILE"] == "batch"  # code default is balanced: set explicitly
    assert env["BATCH_SIZE"] == "500"
    assert env["AUTOSCALE_LAG_SCALE_UP_MS"] == "5000" and env["AUTOSCALE_LAG_CRITICAL_MS"] == "15000"
    # the code counts a lag below AUTOSCALE_LAG_TARGET_MS (batch profile: 10000) towards a scale-down before it
    # looks at the scale-up threshold: the target is the seed's threshold, so a lag above 5 s adds a worker
    assert env["AUTOSCALE_LAG_TARGET_MS"] == env["AUTOSCALE_LAG_SCALE_UP_MS"]
    assert env["REDIS_HOST"] == "client-demo-redis" and env["REDIS_PORT"] == "6379"
    assert env["REDIS_PASSWORD"] == {"secretKeyRef": {"name": "client-demo-redis-auth", "key": "password"}}
    assert env["DB_HOST"] == {"secretKeyRef": {"name": "sql-credentials-demo", "key": "server"}}


def test_spool_uses_the_variables_the_code_reads(manifests) -> None:
    c = container(workload(manifests, "client-demo"))
    env = env_map(c)
    assert env["INGESTION_SPOOL_ENABLED"] == "true"
    assert env["INGESTION_SPOOL_PATH"] == "/var/lib/iotistic/spool"
    assert env["INGESTION_SPOOL_MAX_SIZE_MB"] == "1000"
    assert not [k for k in env if k.startswith("DISK_SPOOL_")], "ingestion never reads DISK_SPOOL_*"
    assert {"name": "spool", "mountPath": "/var/lib/iotistic/spool"} in c["volumeMounts"]


def test_enterprise_spool_max_5gb(manifests) -> None:
    env = env_map(container(workload(manifests, "iotistica-enterprise")))
    assert env["INGESTION_SPOOL_MAX_SIZE_MB"] == "5120"  # seed: disk spool max 5 GB


def test_runtime_secret_loaded_with_env_from(manifests) -> None:
    c = container(workload(manifests, "iotistica"))
    assert c["envFrom"] == [{"secretRef": {"name": "iotistica-ingestion-runtime-env", "optional": False}}]
    assert "NAMESPACE" not in env_map(c), "a namespace is not a tenant id (platform-facts §3.4)"


@pytest.mark.parametrize("release, lo, hi", [("iotistica", 2, 8), ("iotistica-enterprise", 4, 20)])
def test_hpa_and_pdb_seed_numbers(manifests, release, lo, hi) -> None:
    objs = manifests[release]
    hpa = by(objs, "HorizontalPodAutoscaler", f"{release}-ingestion")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (lo, hi)
    assert hpa["scaleTargetRef"]["kind"] == KIND[release]
    assert "replicas" not in workload(manifests, release)["spec"]
    assert by(objs, "PodDisruptionBudget", f"{release}-ingestion")["spec"]["maxUnavailable"] == 1


def test_standard_spool_on_emptydir(manifests) -> None:
    pod = workload(manifests, "iotistica")["spec"]["template"]["spec"]
    spool = next(v for v in pod["volumes"] if v["name"] == "spool")
    assert "emptyDir" in spool
    assert not kinds(manifests["iotistica"], "PersistentVolumeClaim")


def test_single_replica_persistent_spool_is_deployment_with_recreate(manifests) -> None:
    objs = manifests["iotistica-starter"]
    dep = by(objs, "Deployment", "iotistica-starter-ingestion")
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    assert dep["spec"]["replicas"] == 1
    pvc = by(objs, "PersistentVolumeClaim", "iotistica-starter-ingestion-spool")
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    spool = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "spool")
    assert spool == {"name": "spool", "persistentVolumeClaim": {"claimName": "iotistica-starter-ingestion-spool"}}


def test_several_replicas_get_one_claim_each(manifests) -> None:
    objs = manifests["iotistica-enterprise"]
    sts = by(objs, "StatefulSet", "iotistica-enterprise-ingestion")
    assert sts["spec"]["serviceName"] == "iotistica-enterprise-ingestion-headless"
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "spool" and claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "6Gi"
    assert not [v for v in sts["spec"]["template"]["spec"].get("volumes", []) if v["name"] == "spool"]
    assert not kinds(objs, "PersistentVolumeClaim"), "no shared claim"
    headless = by(objs, "Service", "iotistica-enterprise-ingestion-headless")
    assert headless["spec"]["clusterIP"] == "None"
    svc = by(objs, "Service", "iotistica-enterprise-ingestion")
    assert svc["spec"]["ports"] == [{"name": "http", "port": 3003, "protocol": "TCP", "targetPort": "http"}]


def test_redis_cluster_flag_on_enterprise_clients(manifests) -> None:
    objs = manifests["iotistica-enterprise"]
    assert env_map(container(workload(manifests, "iotistica-enterprise")))["REDIS_CLUSTER"] == "true"
    assert env_map(container(by(objs, "Deployment", "iotistica-enterprise-api")))["REDIS_CLUSTER"] == "true"
    assert env_map(container(workload(manifests, "iotistica")))["REDIS_CLUSTER"] == "false"


def test_explicit_statefulset_without_persistence() -> None:
    objs = synth_env(env_from("iotistica", ingestion={"workloadKind": "StatefulSet"}))
    sts = by(objs, "StatefulSet", "iotistica-ingestion")
    assert "volumeClaimTemplates" not in sts["spec"]
