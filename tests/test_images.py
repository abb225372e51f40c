"""Images by digest, never invented (docs/hardening.md): tiers/images.lock pins what it knows, the synth
cache follows the lock, bad locks are refused by synth and validate naming the image, and
``iotistica-k8s images --resolve`` records what a real OCI registry on loopback serves (Debian's
docker-registry, an image pushed there with skopeo)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

import cli
from constructs.scan_skips import checkov_skips
from synth.cache import SynthCache
from synth.pipeline import synthesize
from tests.helpers import by, container
from tests.realservers import free_port, need, running
from tests.test_synth_safety import ENV, project_copy
from tiers.errors import ConfigError
from tiers.images import lock_text, unpinned
from tiers.loader import load_environments, read_lock
from tiers.models import Image

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def lock_file(tmp_path: Path, entries: dict[str, str], name: str = "images.lock") -> Path:
    path = tmp_path / name
    path.write_text(lock_text(entries), encoding="utf-8")
    return path


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def manifests(path: Path) -> dict[str, dict]:
    return {p.name: yaml.safe_load(p.read_text()) for p in path.glob("*.yaml")}


# --- the lock and the models -----------------------------------------------------------------------


def test_the_committed_lock_is_well_formed_and_invents_nothing() -> None:
    """No registry is reachable from where dist/ was built: the lock records no digest (none made up)."""
    assert read_lock() == {}
    assert (ROOT / "tiers" / "images.lock").read_text() == lock_text({})


def test_dist_pins_every_image_the_lock_knows_and_validate_strict_lists_the_others(capsys) -> None:
    lock = read_lock()
    unpinned_refs = set()
    for path in sorted(DIST.glob("*/*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            for c in cli._containers(obj or {}):
                ref, _, digest = c["image"].partition("@")
                if digest:
                    assert lock.get(ref) == digest, f"{path.name}: {c['image']} is not what the lock records"
                else:
                    assert ref not in lock, f"{path.name}: {ref} has a digest in the lock but is written by tag"
                    unpinned_refs.add(ref)
    assert cli.main(["validate", "--strict"]) == 0
    listed = {line.split(": ")[3].split(" ")[0] for line in capsys.readouterr().out.splitlines() if "unpinned" in line}
    assert listed == unpinned_refs


def test_a_locked_image_is_pinned_by_digest_and_pulled_if_not_present(tmp_path: Path) -> None:
    lock = lock_file(tmp_path, {"redis:7.4.2-alpine": DIGEST})
    (env,) = load_environments(ROOT / "environments", ["client-demo"], images_lock=lock)
    assert env.redis.image.digest == DIGEST and env.redis.image.ref == f"redis:7.4.2-alpine@{DIGEST}"
    assert env.api.image.digest is None and env.api.image.ref == "iotistic/api:v0.0.22-rc.1"
    assert ("redis.image", "redis:7.4.2-alpine") not in unpinned(env)
    assert ("api.image", "iotistic/api:v0.0.22-rc.1") in unpinned(env)
    objs = cli.render([env])["client-demo"]
    redis = by(objs, "Deployment", "client-demo-redis")
    assert container(redis)["image"] == f"redis:7.4.2-alpine@{DIGEST}"
    assert container(redis)["imagePullPolicy"] == "IfNotPresent"
    annotations = redis["metadata"].get("annotations", {})
    assert not any(v.startswith("CKV_K8S_43=") for v in annotations.values()), "pinned: no digest skip"
    api = by(objs, "Deployment", "client-demo-api")
    assert container(api)["image"] == "iotistic/api:v0.0.22-rc.1" and container(api)["imagePullPolicy"] == "Always"
    (skip,) = [v for v in api["metadata"]["annotations"].values() if v.startswith("CKV_K8S_43=")]
    assert "no digest recorded in tiers/images.lock for iotistic/api:v0.0.22-rc.1" in skip


def test_an_environment_digest_the_lock_contradicts_is_refused(tmp_path: Path) -> None:
    envs = tmp_path / "environments"
    envs.mkdir()
    data = yaml.safe_load((ROOT / "environments" / "client-demo.yaml").read_text())
    data.setdefault("redis", {})["image"] = {"repository": "redis", "tag": "7.4.2-alpine", "digest": OTHER}
    (envs / "client-demo.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as exc:
        load_environments(envs, images_lock=lock_file(tmp_path, {"redis:7.4.2-alpine": DIGEST}))
    assert str(exc.value) == (
        f"{envs / 'client-demo.yaml'}: redis.image.digest: {OTHER} contradicts tiers/images.lock ({DIGEST}) "
        "for redis:7.4.2-alpine"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "images:\n  redis:7.4.2-alpine: sha256:abc\n",
            "images.redis:7.4.2-alpine: digest of image redis:7.4.2-alpine",
        ),
        (f"images:\n  redis:7.4.2-alpine: SHA256:{'AB' * 32}\n", "digest of image redis:7.4.2-alpine must be"),
        ("images:\n  redis:7.4.2-alpine:\n", "digest of image redis:7.4.2-alpine must be sha256:<64"),
        (f"images:\n  redis: {DIGEST}\n", "images.redis: must be repository:tag"),
        (f"images:\n  redis:latest: {DIGEST}\n", "images.redis:latest: must be repository:tag with a pinned tag"),
        (f"digests:\n  redis:7: {DIGEST}\n", "digests: unknown key"),
        ("images: [redis]\n", "images: must be a mapping"),
    ],
)
def test_a_malformed_lock_is_refused_naming_the_image(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "images.lock"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        read_lock(path, "tiers/images.lock")
    assert str(exc.value).startswith("tiers/images.lock: ") and message in str(exc.value)


def test_an_image_digest_is_checked_in_environment_files_too() -> None:
    with pytest.raises(ValueError, match="digest: must be sha256:<64 lowercase hex digits>, got 'sha256:x'"):
        Image(repository="redis", tag="7", digest="sha256:x")


def test_a_checkov_skip_needs_a_one_line_reason_without_equals() -> None:
    assert checkov_skips({"CKV_K8S_35": "reason"}) == {"checkov.io/skip1": "CKV_K8S_35=reason"}
    for bad in ("", "a=b", "two\nlines"):
        with pytest.raises(ValueError, match="CKV_K8S_35: a Checkov skip needs a one-line reason"):
            checkov_skips({"CKV_K8S_35": bad})


# --- the synth cache follows the lock ----------------------------------------------------------------


def test_a_lock_change_misses_the_cache_and_equals_a_fresh_synth(tmp_path: Path) -> None:
    """The digest is in the model (the loader reads the lock), so the release keys change with it."""
    empty = lock_file(tmp_path, {}, "empty.lock")
    pinned = lock_file(tmp_path, {"redis:7.4.2-alpine": DIGEST}, "pinned.lock")
    cache_dir = tmp_path / "cache"
    envs = load_environments(ROOT / "environments", images_lock=empty)
    synthesize(envs, tmp_path / "a", partial=False, all_envs=envs, cache=SynthCache(cache_dir))
    envs = load_environments(ROOT / "environments", images_lock=pinned)
    cache = SynthCache(cache_dir)
    synthesize(envs, tmp_path / "b", partial=False, all_envs=envs, cache=cache)
    assert (cache.hits, cache.misses) == (1, len(envs)), "every release runs redis; the shared charts read no image"
    for env in envs:
        out = manifests(tmp_path / "b" / env.release)
        images = [c["image"] for o in out.values() for c in cli._containers(o)]
        assert f"redis:7.4.2-alpine@{DIGEST}" in images and "redis:7.4.2-alpine" not in images
    fresh = tmp_path / "c"
    synthesize(envs, fresh, partial=False, all_envs=envs)
    assert tree(fresh) == tree(tmp_path / "b")


# --- bad input through the real entry points ---------------------------------------------------------


def test_synth_and_validate_refuse_a_malformed_digest_naming_the_image(tmp_path: Path) -> None:
    project = project_copy(tmp_path / "project")
    (project / "tiers" / "images.lock").write_text("images:\n  redis:7.4.2-alpine: sha256:1234\n")
    before = tree(project / "dist")
    expected = (
        "error: tiers/images.lock: images.redis:7.4.2-alpine: digest of image redis:7.4.2-alpine must be "
        "sha256:<64 lowercase hex digits>, got 'sha256:1234'"
    )
    python = str(ROOT / ".venv" / "bin" / "python")
    for argv in ([python, "app.py"], [python, "cli.py", "validate"], [python, "cli.py", "images"]):
        proc = subprocess.run(argv, cwd=project, env=ENV, capture_output=True, text=True, timeout=300)
        assert (proc.returncode, proc.stdout, proc.stderr.strip()) == (2, "", expected), argv
    assert tree(project / "dist") == before, "nothing touched"


# --- resolving digests against a real registry on loopback -------------------------------------------


def _blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def oci_layout(layout: Path, tag: str) -> None:
    """A one-file image as an OCI image layout (what skopeo copies from ``oci:``)."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        content = b"iotistica-k8s images test\n"
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime = len(content), 0
        tar.addfile(info, io.BytesIO(content))
    layer = _blob(layout, buf.getvalue())
    diff_id = layer["digest"]
    config = _blob(
        layout,
        json.dumps(
            {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
        ).encode(),
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
    }
    entry = _blob(layout, json.dumps(manifest).encode())
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **entry,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))


@pytest.fixture
def registry(tmp_path: Path):
    """Debian's docker-registry (distribution 2.8) on a loopback port, storage in tmp_path."""
    binary = need("docker-registry")
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "version": 0.1,
                "log": {"level": "error"},
                "storage": {"filesystem": {"rootdirectory": str(tmp_path / "registry-data")}},
                "http": {"addr": f"127.0.0.1:{port}"},
            }
        )
    )
    with running([binary, "serve", str(config)], [port]):
        yield f"127.0.0.1:{port}"


def push(tmp_path: Path, registry: str, repository: str, tag: str) -> str:
    """Push a fresh image with skopeo; the digest skopeo reports for what it pushed."""
    layout = tmp_path / f"layout-{tag}"
    oci_layout(layout, tag)
    digestfile = tmp_path / f"digest-{tag}"
    subprocess.run(
        [
            need("skopeo"),
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--digestfile",
            str(digestfile),
            f"oci:{layout}:{tag}",
            f"docker://{registry}/{repository}:{tag}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return digestfile.read_text().strip()


def loopback_environment(folder: Path, registry: str, down: str) -> None:
    """client-demo with its API image in ``registry`` and every other image in ``down`` (nothing
    listens there): no image of this fleet is looked up beyond loopback."""
    folder.mkdir()
    data = yaml.safe_load((ROOT / "environments" / "client-demo.yaml").read_text())
    images = {
        ("api", "image"): f"{registry}/iotistic/api",
        ("ingestion", "image"): f"{down}/iotistic/ingestion",
        ("redis", "image"): f"{down}/redis",
        ("mosquitto", "image"): f"{down}/mosquitto",
        ("dashboard", "image"): f"{down}/iotistic/dashboard",
        ("secrets", "generatorImage"): f"{down}/python",
        ("dbInit", "image"): f"{down}/postgres",
        ("timescaledb", "image"): f"{down}/postgres",
        ("streamKeyResolver", "image"): f"{down}/python",
    }
    for (block, key), repository in images.items():
        data.setdefault(block, {})[key] = {"repository": repository, "tag": "v1"}
    (folder / "client-demo.yaml").write_text(yaml.safe_dump(data))


def images_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "cli.py"), *argv],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_resolve_records_what_a_real_registry_serves_and_says_which_it_could_not_reach(
    tmp_path: Path, registry: str
) -> None:
    pushed = push(tmp_path, registry, "iotistic/api", "v1")
    down = f"127.0.0.1:{free_port()}"
    envs = tmp_path / "environments"
    loopback_environment(envs, registry, down)
    lock = tmp_path / "images.lock"
    proc = images_cli("--environments", str(envs), "images", "--resolve", "--lock", str(lock))
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines() == [f"recorded: {registry}/iotistic/api:v1@{pushed}"]
    errors = proc.stderr.splitlines()
    assert len([e for e in errors if e.startswith("unreachable: ")]) == 6
    assert all(f"registry {down} (http://{down})" in e for e in errors if e.startswith("unreachable: "))
    assert errors[-1] == f"error: 6 of 7 image(s) not resolved; {lock} records the others"
    assert read_lock(lock) == {f"{registry}/iotistic/api:v1": pushed}, "exactly what skopeo pushed"

    # A second run: the same digest, unchanged; the listing shows what is pinned.
    again = images_cli("--environments", str(envs), "images", "--resolve", "--lock", str(lock))
    assert again.stdout.splitlines() == [f"unchanged: {registry}/iotistic/api:v1@{pushed}"]
    listing = images_cli("--environments", str(envs), "images", "--lock", str(lock))
    assert f"{registry}/iotistic/api:v1@{pushed}" in listing.stdout.splitlines()
    assert f"{down}/redis:v1 (no digest: kept by tag)" in listing.stdout.splitlines()

    # The synth pins it from the lock alone (no registry is asked).
    (env,) = load_environments(envs, images_lock=lock)
    objs = cli.render([env])["client-demo"]
    api = by(objs, "Deployment", "client-demo-api")
    assert container(api)["image"] == f"{registry}/iotistic/api:v1@{pushed}"
    assert container(api)["imagePullPolicy"] == "IfNotPresent"
    assert not any(v.startswith("CKV_K8S_43=") for v in api["metadata"]["annotations"].values())
    ingestion = by(objs, "Deployment", "client-demo-ingestion")
    assert container(ingestion)["image"] == f"{down}/iotistic/ingestion:v1"


def test_resolve_with_no_registry_reachable_says_so_and_records_nothing(tmp_path: Path) -> None:
    down = f"127.0.0.1:{free_port()}"
    envs = tmp_path / "environments"
    loopback_environment(envs, down, down)
    lock = tmp_path / "images.lock"
    proc = images_cli("--environments", str(envs), "images", "--resolve", "--lock", str(lock))
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines()[-1] == f"error: no registry reachable: nothing recorded in {lock}"
    assert not lock.exists()


def test_resolve_refuses_a_tag_the_registry_does_not_have(tmp_path: Path, registry: str) -> None:
    envs = tmp_path / "environments"
    loopback_environment(envs, registry, registry)
    lock = tmp_path / "images.lock"
    proc = images_cli("--environments", str(envs), "images", "--resolve", "--lock", str(lock))
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"not resolved: {registry}/iotistic/api:v1: {registry} answered 404 for iotistic/api:v1" in proc.stderr
    assert not lock.exists(), "nothing answered with a manifest: nothing recorded"
