"""Each tier's generated redis.conf, loaded into a real redis-server, reports the intended settings."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import by
from tests.realservers import free_port, need, running

EXPECTED_MB = {"client-demo": 1536, "iotistica-starter": 512, "iotistica": 2048, "iotistica-enterprise": 8192}


def cli(port: int, *args: str) -> str:
    out = subprocess.run(
        [need("redis-cli"), "-p", str(port), "--no-auth-warning", "-a", "test-password", *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return out.stdout


@pytest.mark.parametrize("release", sorted(EXPECTED_MB))
def test_real_redis_loads_generated_config(manifests, release, tmp_path: Path) -> None:
    conf = by(manifests[release], "ConfigMap", f"{release}-redis")["data"]["redis.conf"]
    path = tmp_path / "redis.conf"
    path.write_text(conf)
    port = free_port(max_port=55535)  # cluster mode needs port + 10000 for its bus
    # Only the places differ from the pod: loopback, a free port, a temporary dir. The password is
    # passed the way the container passes $(REDIS_PASSWORD).
    cmd = [
        need("redis-server"),
        str(path),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(tmp_path),
        "--requirepass",
        "test-password",
    ]
    with running(cmd, [port]):
        assert cli(port, "CONFIG", "GET", "maxmemory").split() == ["maxmemory", str(EXPECTED_MB[release] * 1024 * 1024)]
        assert cli(port, "CONFIG", "GET", "maxmemory-policy").split() == ["maxmemory-policy", "noeviction"]
        assert cli(port, "CONFIG", "GET", "appendonly").split() == ["appendonly", "no"]
        assert cli(port, "CONFIG", "GET", "save").splitlines() == ["save", ""]
        info = cli(port, "INFO", "persistence")
        assert "aof_enabled:0" in info and "rdb_bgsave_in_progress:0" in info
        cluster = cli(port, "INFO", "cluster")
        assert ("cluster_enabled:1" in cluster) is (release == "iotistica-enterprise")
        if release == "iotistica-enterprise":
            cli(port, "CLUSTER", "ADDSLOTSRANGE", "0", "16383")  # a one-node cluster, so writes are served
            deadline = time.monotonic() + 30
            while "cluster_state:ok" not in cli(port, "CLUSTER", "INFO"):
                assert time.monotonic() < deadline, "a one-node cluster with every slot should report ok"
                time.sleep(0.1)
        # noeviction for real: with maxmemory lowered below usage, writes are refused, never evicted.
        cli(port, "SET", "keep", "1")
        cli(port, "CONFIG", "SET", "maxmemory", "1")
        refused = subprocess.run(
            [need("redis-cli"), "-p", str(port), "--no-auth-warning", "-a", "test-password", "SET", "more", "x"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert "OOM" in refused.stdout + refused.stderr
        assert cli(port, "GET", "keep").strip() == "1"
