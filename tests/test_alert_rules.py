"""The PrometheusRule's alerts, checked and unit-tested by the real promtool (Debian's prometheus).

- ``promtool check rules`` on the rule file of every environment that has one (and of variants: no
  HPA, other profile, other thresholds).
- ``promtool test rules``: the dwell-latency alerts (warning > 30 s, critical > 60 s) and the
  stream-watermark alert fire, and stay quiet at and below their thresholds; the watermark follows
  THIS environment's REDIS_INGESTION_STREAM_MAXLEN. Also the HPA-at-max alert against this
  environment's maxReplicas, and the Redis-memory alert with an unlimited Redis (max 0).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import by, env_from, kinds, synth_env
from tests.realservers import need
from tiers.models import Environment


def rule_file(objs: list[dict[str, Any]], release: str) -> dict[str, Any]:
    """The PrometheusRule's spec.groups as a Prometheus rule file."""
    return {"groups": by(objs, "PrometheusRule", f"{release}-alerts")["spec"]["groups"]}


def rules_by_name(groups: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in groups["groups"] for r in g["rules"]}


def check_rules(tmp_path: Path, groups: dict[str, Any]) -> str:
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(groups, sort_keys=False))
    proc = subprocess.run(
        [need("promtool"), "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
    return proc.stdout


def run_unit_tests(tmp_path: Path, groups: dict[str, Any], tests: list[dict[str, Any]]) -> None:
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(groups, sort_keys=False))
    spec = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    proc = subprocess.run(
        [need("promtool"), "test", "rules", "tests.yml"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def rendered_annotations(rule: dict[str, Any], **values: str) -> dict[str, str]:
    """The rule's annotations as promtool renders them, for the template values given."""
    out = {}
    for key, text in rule["annotations"].items():
        for template, value in (
            ("{{ $value | humanize }}", values.get("humanized")),
            ("{{ $value | humanizePercentage }}", values.get("percentage")),
            ('{{ printf "%.0f" $value }}', values.get("value")),
            ("{{ $labels.pod }}", values.get("pod")),
        ):
            if value is not None:
                text = text.replace(template, value)
        assert "{{" not in text, f"unrendered template left in {key}: {text}"
        out[key] = text
    return out


def firing(rule: dict[str, Any], labels: dict[str, str], **values: str) -> list[dict[str, Any]]:
    return [{"exp_labels": {**rule["labels"], **labels}, "exp_annotations": rendered_annotations(rule, **values)}]


# --- promtool check rules -------------------------------------------------------------------------


def variants() -> dict[str, Environment]:
    return {
        "demo-monitored": env_from("client-demo", monitoring={"enabled": True}),
        "starter-streaming": env_from(
            "iotistica-starter",
            monitoring={"enabled": True, "alerts": {"streamWatermarkPercent": 90, "hpaAtMaxFor": "30m"}},
            ingestion={"profile": "streaming"},
        ),
    }


def test_promtool_checks_every_generated_rule_file(manifests, environments, tmp_path: Path) -> None:
    checked = []
    for release, objs in manifests.items():
        if environments[release].monitoring.enabled:
            out = check_rules(tmp_path, rule_file(objs, release))
            checked.append(release)
            assert f"SUCCESS: {len(rules_by_name(rule_file(objs, release)))} rules found" in out
        else:
            assert not kinds(objs, "PrometheusRule") and not kinds(objs, "ServiceMonitor")
    assert sorted(checked) == ["iotistica", "iotistica-enterprise"]
    for env in variants().values():
        check_rules(tmp_path, rule_file(synth_env(env), env.release))


def test_every_alert_has_a_summary_a_description_and_a_severity(manifests, environments) -> None:
    for release, objs in manifests.items():
        if not environments[release].monitoring.enabled:
            continue
        for name, rule in rules_by_name(rule_file(objs, release)).items():
            assert rule["labels"]["severity"] in ("warning", "critical"), name
            assert rule["annotations"]["summary"], name
            assert len(rule["annotations"]["description"]) > 80, f"{name}: say what to check and do"
            assert environments[release].namespace in rule["expr"], f"{name} must select this release only"


def test_the_issue_s_alerts_exist(manifests) -> None:
    names = set(rules_by_name(rule_file(manifests["iotistica"], "iotistica")))
    assert {
        "IotisticaIngestionDwellLatencyHigh",
        "IotisticaIngestionDwellLatencyCritical",
        "IotisticaIngestionStreamHighWatermark",
        "IotisticaRedisMemoryHigh",
        "IotisticaIngestionRedisDisconnected",
        "IotisticaIngestionDlqGrowing",
        "IotisticaIngestionMessagesDropped",
        "IotisticaIngestionDbPoolSaturated",
        "IotisticaApiHpaAtMax",
        "IotisticaIngestionHpaAtMax",
    } <= names


def test_no_hpa_alert_without_an_hpa_and_thresholds_follow_the_settings() -> None:
    env = variants()["starter-streaming"]
    rules = rules_by_name(rule_file(synth_env(env), env.release))
    assert not [n for n in rules if n.endswith("HpaAtMax")]  # the starter tier has no HPA
    limit = env.stream_maxlen * 90 // 100
    assert rules["IotisticaIngestionStreamHighWatermark"]["expr"].endswith(f">= {limit}")
    # the streaming profile's DB_SATURATION_HIGH_WATERMARK_PCT (platform-facts §3.2)
    assert rules["IotisticaIngestionDbPoolSaturated"]["expr"].endswith(">= 85")


# --- promtool test rules --------------------------------------------------------------------------


@pytest.mark.parametrize("release", ["iotistica", "iotistica-enterprise"])
def test_dwell_latency_alerts_fire_above_30s_and_60s_and_stay_quiet_otherwise(
    manifests, environments, release, tmp_path: Path
) -> None:
    env = environments[release]
    groups = rule_file(manifests[release], release)
    rules = rules_by_name(groups)
    warn, crit = rules["IotisticaIngestionDwellLatencyHigh"], rules["IotisticaIngestionDwellLatencyCritical"]
    labels = {"namespace": env.namespace, "job": f"{release}-ingestion"}
    series = f'iotistic_ingestion_dwell_latency_p95_ms{{namespace="{env.namespace}", job="{release}-ingestion"'
    tests = [
        {
            "interval": "1m",
            "input_series": [
                # 10 minutes each: 20 s, exactly 30 s, 45 s, exactly 60 s, 90 s, back to 20 s.
                {"series": series + ', pod="a"}', "values": "20000x9 30000x9 45000x9 60000x9 90000x9 20000x9"},
                {"series": series + ', pod="b"}', "values": "1000x59"},  # the max over pods counts
                # another release's ingestion never triggers this release's alerts
                {
                    "series": 'iotistic_ingestion_dwell_latency_p95_ms{namespace="other", job="other-ingestion"}',
                    "values": "99000x59",
                },
            ],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": warn["alert"], "exp_alerts": []},
                {"eval_time": "15m", "alertname": warn["alert"], "exp_alerts": []},  # 30 s is not above 30 s
                {"eval_time": "20m", "alertname": warn["alert"], "exp_alerts": []},  # pending (for: 1m)
                {"eval_time": "25m", "alertname": warn["alert"], "exp_alerts": firing(warn, labels, humanized="45k")},
                {"eval_time": "25m", "alertname": crit["alert"], "exp_alerts": []},
                {"eval_time": "35m", "alertname": crit["alert"], "exp_alerts": []},  # 60 s is not above 60 s
                {"eval_time": "35m", "alertname": warn["alert"], "exp_alerts": firing(warn, labels, humanized="60k")},
                {"eval_time": "45m", "alertname": crit["alert"], "exp_alerts": firing(crit, labels, humanized="90k")},
                {"eval_time": "45m", "alertname": warn["alert"], "exp_alerts": firing(warn, labels, humanized="90k")},
                {"eval_time": "55m", "alertname": warn["alert"], "exp_alerts": []},
                {"eval_time": "55m", "alertname": crit["alert"], "exp_alerts": []},
            ],
        }
    ]
    run_unit_tests(tmp_path, groups, tests)


def watermark_case(env: Environment, objs: list[dict[str, Any]], tmp_path: Path) -> int:
    """Runs the watermark unit test for ``env``; returns the threshold it proved."""
    groups = rule_file(objs, env.release)
    rule = rules_by_name(groups)["IotisticaIngestionStreamHighWatermark"]
    maxlen = env.stream_maxlen
    threshold = maxlen * 80 // 100  # the batch profile's REDIS_DEVICE_STREAM_HIGH_WATERMARK_PCT
    labels = {"namespace": env.namespace, "job": f"{env.release}-ingestion"}
    series = f'iotistic_ingestion_stream_length{{namespace="{env.namespace}", job="{env.release}-ingestion"'
    tests = [
        {
            "interval": "1m",
            "input_series": [
                # 0, just below the watermark, exactly at it, at the cap, drained again.
                {"series": series + ', pod="a"}', "values": f"0x4 {threshold - 1}x9 {threshold}x9 {maxlen}x9 0x9"},
                {"series": series + ', pod="b"}', "values": "0x44"},
            ],
            "alert_rule_test": [
                {"eval_time": "3m", "alertname": rule["alert"], "exp_alerts": []},
                {"eval_time": "12m", "alertname": rule["alert"], "exp_alerts": []},  # one below the watermark
                {"eval_time": "16m", "alertname": rule["alert"], "exp_alerts": []},  # pending (for: 2m)
                {
                    "eval_time": "20m",
                    "alertname": rule["alert"],
                    "exp_alerts": firing(rule, labels, value=str(threshold)),
                },
                {"eval_time": "30m", "alertname": rule["alert"], "exp_alerts": firing(rule, labels, value=str(maxlen))},
                {"eval_time": "40m", "alertname": rule["alert"], "exp_alerts": []},
            ],
        }
    ]
    run_unit_tests(tmp_path, groups, tests)
    return threshold


@pytest.mark.parametrize("release", ["iotistica", "iotistica-enterprise"])
def test_stream_watermark_follows_this_environment_s_maxlen(manifests, environments, release, tmp_path: Path) -> None:
    env = environments[release]
    threshold = watermark_case(env, manifests[release], tmp_path)
    # standard 600,000 -> 480,000 (seed tier table); enterprise 3,000,000 -> 2,400,000 (60 s at the rated
    # 50,000 r/s: the environment file's departure from the seed's 1,200,000, README)
    assert threshold == {"iotistica": 480000, "iotistica-enterprise": 2400000}[release]
    rule = rules_by_name(rule_file(manifests[release], release))["IotisticaIngestionStreamHighWatermark"]
    assert f"REDIS_INGESTION_STREAM_MAXLEN ({env.stream_maxlen})" in rule["annotations"]["description"]


def test_stream_watermark_is_derived_not_hard_coded(tmp_path: Path) -> None:
    env = env_from("client-demo", monitoring={"enabled": True}, ingestion={"streamMaxlen": 12345})
    assert watermark_case(env, synth_env(env), tmp_path) == 9876


def test_hpa_at_max_alert_uses_this_environment_s_max(manifests, environments, tmp_path: Path) -> None:
    release = "iotistica-enterprise"
    env = environments[release]
    groups = rule_file(manifests[release], release)
    rule = rules_by_name(groups)["IotisticaIngestionHpaAtMax"]
    top = env.ingestion.hpa.max_replicas
    assert top == 20 and rule["expr"].endswith(f">= {top}")
    labels = {"namespace": env.namespace, "horizontalpodautoscaler": f"{release}-ingestion"}
    series = (
        f'kube_horizontalpodautoscaler_status_current_replicas{{namespace="{env.namespace}", '
        f'horizontalpodautoscaler="{release}-ingestion"}}'
    )
    tests = [
        {
            "interval": "1m",
            "input_series": [{"series": series, "values": f"{top - 1}x29 {top}x29"}],
            "alert_rule_test": [
                {"eval_time": "25m", "alertname": rule["alert"], "exp_alerts": []},
                {"eval_time": "40m", "alertname": rule["alert"], "exp_alerts": []},  # 10 of 15 minutes at max
                {"eval_time": "50m", "alertname": rule["alert"], "exp_alerts": firing(rule, labels)},
            ],
        }
    ]
    run_unit_tests(tmp_path, groups, tests)


def test_redis_memory_alert_at_75_percent_and_never_for_an_unlimited_redis(manifests, tmp_path: Path) -> None:
    release, ns = "iotistica", "iotistica"
    groups = rule_file(manifests[release], release)
    rule = rules_by_name(groups)["IotisticaRedisMemoryHigh"]
    sel = f'namespace="{ns}", job="{release}-ingestion", pod="a"'
    labels = {"namespace": ns, "job": f"{release}-ingestion"}
    tests = [
        {
            "interval": "1m",
            "input_series": [
                {"series": f"iotistic_ingestion_redis_memory_used_bytes{{{sel}}}", "values": "740x9 750x19"},
                {"series": f"iotistic_ingestion_redis_memory_max_bytes{{{sel}}}", "values": "1000x19 0x9"},
            ],
            "alert_rule_test": [
                {"eval_time": "8m", "alertname": rule["alert"], "exp_alerts": []},
                {"eval_time": "17m", "alertname": rule["alert"], "exp_alerts": firing(rule, labels, percentage="75%")},
                {"eval_time": "27m", "alertname": rule["alert"], "exp_alerts": []},  # maxmemory 0 = unlimited
            ],
        }
    ]
    run_unit_tests(tmp_path, groups, tests)


# --- Redis Cluster (redis_exporter metrics) -------------------------------------------------------


def test_redis_cluster_alerts_fire_after_the_repair_bound_and_only_for_this_cluster(
    manifests, environments, tmp_path: Path
) -> None:
    """cluster_state:fail on a node, fewer than 3 masters or unserved slots, fewer than 3 replicas: each
    fires only after `for` (the repair CronJob's bound, 150 s, rounded up plus a minute: 4m)."""
    release = "iotistica-enterprise"
    env = environments[release]
    groups = rule_file(manifests[release], release)
    rules = rules_by_name(groups)
    state = rules["IotisticaRedisClusterStateFail"]
    masters = rules["IotisticaRedisClusterMastersBelowWanted"]
    replicas = rules["IotisticaRedisClusterReplicasBelowWanted"]
    assert state["for"] == masters["for"] == replicas["for"] == "4m"
    assert env.redis.cluster.masters == 3 and env.redis.cluster.replicas_per_master == 1
    job = f"{release}-redis-headless"
    sel = f'namespace="{env.namespace}", job="{job}"'
    labels = {"namespace": env.namespace, "job": job}

    def per_pod(metric: str, values: dict[str, str]) -> list[dict[str, str]]:
        return [{"series": f'{metric}{{{sel}, pod="{release}-redis-{i}"}}', "values": v} for i, v in values.items()]

    def fires(rule: dict[str, Any], extra: dict[str, str], value: str = "") -> list[dict[str, Any]]:
        pod = extra.get("pod", "")
        text = {
            k: v.replace("{{ $value }}", value).replace("{{ $labels.pod }}", pod)
            for k, v in rule["annotations"].items()
        }
        assert not any("{{" in v for v in text.values()), text
        return [{"exp_labels": {**rule["labels"], **labels, **extra}, "exp_annotations": text}]

    healthy_rest = {str(i): "1x39" for i in range(1, 6)}
    tests = [
        {
            "interval": "1m",
            "input_series": [
                # pod 0 restarted empty at 10m (fail), the repair fails to run until 20m, then ok.
                *per_pod("redis_cluster_state", {"0": "1x9 0x9 1x19", **healthy_rest}),
                # masters serving slots: 3, then 2 from 10m to 20m (one lost with its replica), then 3
                *per_pod("redis_cluster_size", {"0": "3x9 0x9 3x19", "1": "3x9 2x9 3x19"}),
                # slots served: all, then 10923 from 10m, all again from 20m
                *per_pod("redis_cluster_slots_ok", {"0": "16384x9 0x9 16384x19", "1": "16384x9 10923x9 16384x19"}),
                # replicas: one per master (0, 1, 2; 3 is a replica), none on 0 from 30m for 3 minutes only
                # (the repair's normal work)
                *per_pod("redis_connected_slaves", {"0": "1x29 0x2 1x6", "1": "1x39", "2": "1x39", "3": "0x39"}),
                *[
                    {
                        "series": f'redis_instance_info{{{sel}, pod="{release}-redis-{i}", role="{role}"}}',
                        "values": "1x39",
                    }
                    for i, role in (("0", "master"), ("1", "master"), ("2", "master"), ("3", "slave"))
                ],
                *per_pod("redis_cluster_known_nodes", {str(i): "6x39" for i in range(4)}),
                # another release's cluster never triggers this one's alerts
                {
                    "series": 'redis_cluster_state{namespace="other", job="other-redis-headless", pod="x"}',
                    "values": "0x39",
                },
            ],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": state["alert"], "exp_alerts": []},
                {"eval_time": "13m", "alertname": state["alert"], "exp_alerts": []},  # within the repair bound
                {
                    "eval_time": "15m",
                    "alertname": state["alert"],
                    "exp_alerts": fires(state, {"pod": f"{release}-redis-0"}),
                },
                {"eval_time": "25m", "alertname": state["alert"], "exp_alerts": []},
                {"eval_time": "13m", "alertname": masters["alert"], "exp_alerts": []},
                {"eval_time": "15m", "alertname": masters["alert"], "exp_alerts": fires(masters, {}, "2")},
                {"eval_time": "25m", "alertname": masters["alert"], "exp_alerts": []},
                {"eval_time": "33m", "alertname": replicas["alert"], "exp_alerts": []},  # repaired within 3m
            ],
        }
    ]
    run_unit_tests(tmp_path, groups, tests)


def test_redis_replicas_alert_counts_per_master_and_fires_on_the_uneven_cluster(
    manifests, environments, tmp_path: Path
) -> None:
    """Masters a, b, c with one replica each (d, e, f). From 10m a replica of b is re-pointed to a: 2 + 0 + 1
    replicas, 3 in all, yet b loses its slots' keys with its next loss: the alert fires for b after `for`
    (4m, longer than the repair's bound). From 20m c loses its replica too (a lost replica the repair
    never re-adds): it fires for c as well. Replicas (0 replicas of their own) and a fresh node that knows
    only itself (a master with none) never fire."""
    release = "iotistica-enterprise"
    env = environments[release]
    groups = rule_file(manifests[release], release)
    rule = rules_by_name(groups)["IotisticaRedisClusterReplicasBelowWanted"]
    assert rule["for"] == "4m" and env.redis.cluster.replicas_per_master == 1
    job = f"{release}-redis-headless"
    sel = f'namespace="{env.namespace}", job="{job}"'
    pods = {  # pod: (role, known nodes, connected replicas over 30 minutes)
        "a": ("master", "6x29", "1x9 2x20"),
        "b": ("master", "6x29", "1x9 0x20"),
        "c": ("master", "6x29", "1x19 0x10"),
        "d": ("slave", "6x29", "0x29"),
        "e": ("slave", "6x29", "0x29"),
        "f": ("slave", "6x29", "0x29"),
        "g": ("master", "1x29", "0x29"),
    }
    series = []
    for pod, (role, known, connected) in pods.items():
        series += [
            {"series": f'redis_connected_slaves{{{sel}, pod="{pod}"}}', "values": connected},
            {"series": f'redis_cluster_known_nodes{{{sel}, pod="{pod}"}}', "values": known},
            {
                # what the exporter emits: one series per node, its role among other INFO labels
                "series": f'redis_instance_info{{{sel}, pod="{pod}", role="{role}", redis_mode="cluster",'
                f' redis_version="7.4.2", tcp_port="6379"}}',
                "values": "1x29",
            },
        ]

    def fires(*names: str) -> list[dict[str, Any]]:
        out = []
        for pod in names:
            text = {
                k: v.replace("{{ $labels.pod }}", pod).replace("{{ $value }}", "0")
                for k, v in rule["annotations"].items()
            }
            assert not any("{{" in v for v in text.values()), text
            out.append(
                {
                    "exp_labels": {**rule["labels"], "namespace": env.namespace, "job": job, "pod": pod},
                    "exp_annotations": text,
                }
            )
        return out

    tests = [
        {
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [
                {"eval_time": "9m", "alertname": rule["alert"], "exp_alerts": []},
                {"eval_time": "13m", "alertname": rule["alert"], "exp_alerts": []},  # within the repair's bound
                {"eval_time": "15m", "alertname": rule["alert"], "exp_alerts": fires("b")},
                {"eval_time": "25m", "alertname": rule["alert"], "exp_alerts": fires("b", "c")},
            ],
        }
    ]
    run_unit_tests(tmp_path, groups, tests)
    description = rule["annotations"]["description"]
    assert "redis-cli --cluster check" in description and f"{release}-redis-cluster-repair" in description
