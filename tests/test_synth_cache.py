"""Incremental synth: a cache hit is byte-for-byte what a fresh synth writes, and every input misses."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

import app
from synth_cache import SynthCache, code_fingerprint, key
from tiers.loader import load_environments

ROOT = Path(__file__).resolve().parent.parent


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_cached_synth_equals_fresh_synth(tmp_path: Path) -> None:
    envs = load_environments(ROOT / "environments")
    fresh, cold, warm = tmp_path / "fresh", tmp_path / "cold", tmp_path / "warm"
    app.synthesize(envs, fresh, partial=False, all_envs=envs)
    cache = SynthCache(tmp_path / "cache")
    app.synthesize(envs, cold, partial=False, all_envs=envs, cache=cache)
    assert (cache.hits, cache.misses) == (0, len(envs) + 1)  # every release and the shared charts
    cache = SynthCache(tmp_path / "cache")
    app.synthesize(envs, warm, partial=False, all_envs=envs, cache=cache)
    assert (cache.hits, cache.misses) == (len(envs) + 1, 0)
    assert tree(fresh) == tree(cold) == tree(warm)


def test_changing_one_environment_misses_only_that_one(tmp_path: Path) -> None:
    env_dir = tmp_path / "environments"
    shutil.copytree(ROOT / "environments", env_dir)
    cache_dir = tmp_path / "cache"
    assert (
        app.main(["--environments", str(env_dir), "--outdir", str(tmp_path / "a"), "--cache-dir", str(cache_dir)]) == 0
    )
    path = env_dir / "client-demo.yaml"
    data = yaml.safe_load(path.read_text())
    data.setdefault("api", {})["dbPoolSize"] = 21
    path.write_text(yaml.safe_dump(data))
    envs = load_environments(env_dir)
    cache = SynthCache(cache_dir)
    app.synthesize(envs, tmp_path / "b", partial=False, all_envs=envs, cache=cache)
    assert cache.misses == 2, "the changed release and the shared charts (which list every release)"
    assert 'value: "21"' in (tmp_path / "b" / "client-demo" / "Deployment.client-demo-api.k8s.yaml").read_text()
    fresh = tmp_path / "c"
    app.synthesize(envs, fresh, partial=False, all_envs=envs)
    assert tree(fresh) == tree(tmp_path / "b")


def test_code_fingerprint_covers_code_presets_scripts_and_bindings(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("app.py", "synth_cache.py", "requirements.lock"):
        shutil.copy(ROOT / name, copy / name)
    for folder in ("constructs", "tiers", "imports"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    base = code_fingerprint(copy)
    assert base == code_fingerprint(copy), "stable"
    for rel in (
        "constructs/core/api_service.py",
        "constructs/scripts/redis-cluster-bootstrap.sh",
        "tiers/presets/standard.yaml",
        "tiers/models/base.py",
        "tiers/models/environment.py",
        "app.py",
        "requirements.lock",
        "imports/README.md",
    ):
        path = copy / rel
        original = path.read_bytes()
        path.write_bytes(original + b"\n# changed\n")
        assert code_fingerprint(copy) != base, f"{rel} must be part of the cache key"
        path.write_bytes(original)
    (copy / "constructs" / "new_module.py").write_text("X = 1\n")
    assert code_fingerprint(copy) != base, "a new file changes the key"


def test_key_depends_on_every_part() -> None:
    assert key("code", "release", "a") != key("code", "release", "b")
    assert key("code1", "release", "a") != key("code2", "release", "a")
    assert key("c", "ab", "c") != key("c", "a", "bc")
