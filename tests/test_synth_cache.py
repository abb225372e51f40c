"""Incremental synth: a cache hit is byte-for-byte what a fresh synth writes, and every input misses."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import yaml

import app
from synth import output, pipeline
from synth.cache import OUTPUTS, SynthCache
from synth.plan import code_fingerprint, key
from tiers.loader import load_environments

ROOT = Path(__file__).resolve().parent.parent


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def entry_files(cache_dir: Path) -> dict[str, bytes]:
    """The cache's entries (its records of output folders, synth/cache.py OUTPUTS, left out)."""
    return {k: v for k, v in tree(cache_dir).items() if not k.startswith(f"{OUTPUTS}/")}


def test_cached_synth_equals_fresh_synth(tmp_path: Path) -> None:
    envs = load_environments(ROOT / "environments")
    fresh, cold, warm = tmp_path / "fresh", tmp_path / "cold", tmp_path / "warm"
    pipeline.synthesize(envs, fresh, partial=False, all_envs=envs)
    cache = SynthCache(tmp_path / "cache")
    pipeline.synthesize(envs, cold, partial=False, all_envs=envs, cache=cache)
    assert (cache.hits, cache.misses) == (0, len(envs) + 1)  # every release and the shared charts
    cache = SynthCache(tmp_path / "cache")
    pipeline.synthesize(envs, warm, partial=False, all_envs=envs, cache=cache)
    assert (cache.hits, cache.misses) == (len(envs) + 1, 0)
    assert tree(fresh) == tree(cold) == tree(warm)


def _primed_with_demo(tmp_path: Path) -> tuple[Path, Path, Path, dict[str, Any]]:
    """A copy of environments/ synthesized once into a cache: (its folder, the cache, client-demo's
    file, client-demo's settings to change and write back)."""
    env_dir = tmp_path / "environments"
    shutil.copytree(ROOT / "environments", env_dir)
    cache_dir = tmp_path / "cache"
    assert (
        app.main(["--environments", str(env_dir), "--outdir", str(tmp_path / "a"), "--cache-dir", str(cache_dir)]) == 0
    )
    path = env_dir / "client-demo.yaml"
    return env_dir, cache_dir, path, yaml.safe_load(path.read_text())


def test_changing_one_environment_misses_only_that_one(tmp_path: Path) -> None:
    env_dir, cache_dir, path, data = _primed_with_demo(tmp_path)
    data.setdefault("api", {})["dbPoolSize"] = 21
    path.write_text(yaml.safe_dump(data))
    envs = load_environments(env_dir)
    cache = SynthCache(cache_dir)
    pipeline.synthesize(envs, tmp_path / "b", partial=False, all_envs=envs, cache=cache)
    assert cache.misses == 1, "the changed release only: the shared charts read nothing of api (tiers/shared.py)"
    assert 'value: "21"' in (tmp_path / "b" / "client-demo" / "Deployment.client-demo-api.k8s.yaml").read_text()
    fresh = tmp_path / "c"
    pipeline.synthesize(envs, fresh, partial=False, all_envs=envs)
    assert tree(fresh) == tree(tmp_path / "b")


def test_a_change_the_shared_charts_read_misses_them_too(tmp_path: Path) -> None:
    """A new namespace is in the release's Argo CD AppProject, in its Namespace file of the platform
    folder and in the admission policies' list of release namespaces: the release and the shared charts
    are rendered again, and match a fresh synth."""
    env_dir, cache_dir, path, data = _primed_with_demo(tmp_path)
    data["namespace"] = "demo-moved"
    path.write_text(yaml.safe_dump(data))
    envs = load_environments(env_dir)
    cache = SynthCache(cache_dir)
    pipeline.synthesize(envs, tmp_path / "b", partial=False, all_envs=envs, cache=cache)
    assert cache.misses == 2, "the changed release and the shared charts"
    argocd = (tmp_path / "b" / "argocd" / "AppProject.client-demo.k8s.yaml").read_text()
    assert "namespace: demo-moved" in argocd
    assert (tmp_path / "b" / "cluster" / "in-cluster" / "Namespace.demo-moved.k8s.yaml").is_file()
    assert not (tmp_path / "b" / "cluster" / "in-cluster" / "Namespace.demo.k8s.yaml").exists()
    fresh = tmp_path / "c"
    pipeline.synthesize(envs, fresh, partial=False, all_envs=envs)
    assert tree(fresh) == tree(tmp_path / "b")


def test_code_fingerprint_covers_code_presets_scripts_and_bindings(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("app.py", "requirements.lock"):
        shutil.copy(ROOT / name, copy / name)
    for folder in ("constructs", "synth", "tiers", "imports"):
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
        "synth/render.py",
        "synth/python_renderer.py",
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


# --------------------------------------------------------------------------------------------------
# The synth's inputs are read as before: libyaml's fast path gives what the strict loader gives
# --------------------------------------------------------------------------------------------------

TRICKY_YAML = [
    "",
    "# only a comment\n",
    "~\n",
    "a: 1\n",
    "\ufeffa: 1\n",
    "a: yes\nb: No\nc: on\nd: 0o17\ne: 017\nf: 0x1F\ng: 1_000\nh: 1e3\ni: .inf\nj: -.NaN\nk: 12:30:00\n",
    "a: 2026-11-30\nb: 2026-11-30T03:01:16Z\nc: '2026-11-30'\n",
    "a: !!str 1\nb: !!int '2'\nc: !!float 3\nd: !!binary aGVsbG8=\ne: !!null ''\n",
    "a: |\n  one\n  two\n\nb: >-\n  folded\n  text\nc: |+\n  keep\n\n",
    "a: \"tab\\tand \\u00e9 \\x41\"\nb: 'it''s'\nc: \"multi\n  line\"\n",
    "a: [1, {b: c}, [d, e]]\nf: {g: h, i: [j]}\n",
    "a:\n- b\n-   - c\n    - d\n- e: f\n  g: h\n",
    "? [complex, key]\n: value\n",
    "a: b\na: c\n",
    "a:\n  b: 1\n  b: 2\n",
    "a: &x 1\nb: *x\n",
    "a: [*x]\n",
    "a: b\n---\nc: d\n",
    "a: b: c\n",
    "a: [1, 2\n",
    "\ta: 1\n",
    "a:\n\t- 1\n",
    "a: 'x\x85y'\n",
    "a: \x07\n",
    "a: " + "[" * 80 + "]" * 80 + "\n",
    "a: " + "[" * 2000 + "]" * 2000 + "\n",
    "%YAML 1.1\n---\na: 1\n",
    "%YAML 1.3\n---\na: 1\n",
    "!!python/object:os.system {}\n",
    "a: !custom 1\n",
    "<<: {a: 1}\nb: 2\n",
    "a: 1 # comment\nb: '#not'\nc: x#y\n",
    "- 1\n- 2\n",
    "plain scalar\n",
    "a: null\nb: Null\nc:\nd: ''\n",
    "a: é\nb: 日本\nc: \U0001f600\n",
]


def _outcome(read, text: str) -> object:
    from tiers import loader

    try:
        data = read(text)
    except loader._Refused as exc:
        return ("refused", exc.line, exc.path, exc.message)
    except RecursionError:
        return ("recursion",)
    except yaml.YAMLError as exc:
        return ("yaml", type(exc).__name__, str(exc))
    except Exception as exc:  # noqa: BLE001 - the two readers must fail alike, whatever the failure
        return ("error", type(exc).__name__, str(exc))

    def typed(value: object) -> object:  # 1, 1.0 and True compare equal; the types must match too
        if isinstance(value, dict):
            return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
        if isinstance(value, list):
            return ("list", [typed(v) for v in value])
        return (type(value).__name__, repr(value))

    return ("data", typed(data))


def test_environment_files_read_by_libyaml_equal_the_strict_loader() -> None:
    from tiers import loader

    texts = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "environments").glob("*.yaml"))]
    texts += [p.read_text(encoding="utf-8") for p in sorted(loader.PRESETS.glob("*.yaml"))]
    texts += [p.read_text(encoding="utf-8") for p in sorted((ROOT / "tests" / "fixtures").rglob("*.yaml"))]
    for text in [*texts, *TRICKY_YAML]:
        assert _outcome(loader.read_yaml, text) == _outcome(loader.read_yaml_strict, text), repr(text[:200])
    # The committed files do take the fast path (else it would be dead code).
    assert all(loader._read_yaml_fast(text) is not loader._UNSURE for text in texts[:4])


def test_a_preset_is_parsed_once_and_every_environment_gets_its_own_copy(tmp_path: Path) -> None:
    from tiers import loader

    first, second = loader._read_preset("standard"), loader._read_preset("standard")
    assert first == second and first is not second
    nested = next(k for k, v in first.items() if isinstance(v, dict))
    first[nested]["changed"] = True
    assert "changed" not in loader._read_preset("standard")[nested], "a caller's change never leaks"


# --------------------------------------------------------------------------------------------------
# Entries are files of their own: never linked to the output, never trusted when damaged
# --------------------------------------------------------------------------------------------------


def test_editing_an_output_file_in_place_never_reaches_the_cache(tmp_path: Path) -> None:
    envs = load_environments(ROOT / "environments")
    cache_dir = tmp_path / "cache"
    pipeline.synthesize(envs, tmp_path / "cold", partial=False, all_envs=envs, cache=SynthCache(cache_dir))
    entries = entry_files(cache_dir)
    warm = tmp_path / "warm"
    cache = SynthCache(cache_dir)
    pipeline.synthesize(envs, warm, partial=False, all_envs=envs, cache=cache)
    assert cache.misses == 0
    # What an editor that writes in place does (vim with backupcopy=yes, `cat > file`): same inode.
    edited = sorted(warm.glob("*/*.k8s.yaml"))
    for path in edited:
        with open(path, "r+b") as f:
            f.write(b"# edited in place\n")
    assert all(p.stat().st_nlink == 1 for p in warm.rglob("*") if p.is_file()), "no file is linked"
    assert entry_files(cache_dir) == entries, "the cache's entries are untouched"
    again = tmp_path / "again"
    pipeline.synthesize(envs, again, partial=False, all_envs=envs, cache=SynthCache(cache_dir))
    assert tree(again) == tree(tmp_path / "cold")


def test_a_damaged_or_foreign_entry_is_a_miss_and_is_replaced(tmp_path: Path) -> None:
    envs = load_environments(ROOT / "environments")
    cache_dir = tmp_path / "cache"
    pipeline.synthesize(envs, tmp_path / "fresh", partial=False, all_envs=envs, cache=SynthCache(cache_dir))
    entries = sorted(p for p in cache_dir.iterdir() if p.name != OUTPUTS)
    assert len(entries) == len(envs) + 1 and all(p.is_file() for p in entries)
    # One byte changed, one entry cut short, one in an older version's layout (a folder).
    data = bytearray(entries[0].read_bytes())
    data[-1] ^= 1
    entries[0].write_bytes(bytes(data))
    entries[1].write_bytes(entries[1].read_bytes()[:-10])
    entries[2].unlink()
    entries[2].mkdir()
    (entries[2] / ".complete").write_text("")
    cache = SynthCache(cache_dir)
    pipeline.synthesize(envs, tmp_path / "out", partial=False, all_envs=envs, cache=cache)
    assert (cache.hits, cache.misses) == (len(envs) + 1 - 3, 3)
    assert tree(tmp_path / "out") == tree(tmp_path / "fresh")
    assert sorted(p.name for p in cache_dir.iterdir() if p.name != OUTPUTS) == [p.name for p in entries], (
        "replaced, none left over"
    )
    cache = SynthCache(cache_dir)
    pipeline.synthesize(envs, tmp_path / "again", partial=False, all_envs=envs, cache=cache)
    assert (cache.hits, cache.misses) == (len(envs) + 1, 0)


def test_an_entry_pruned_between_probe_and_fetch_is_rendered_after_all(tmp_path: Path) -> None:
    envs = load_environments(ROOT / "environments")
    cache_dir = tmp_path / "cache"
    pipeline.synthesize(envs, tmp_path / "fresh", partial=False, all_envs=envs, cache=SynthCache(cache_dir))

    class PrunedMeanwhile(SynthCache):
        def fetch(self, entry: str, dest: Path, previous: Path | None = None) -> bool:
            (self.directory / entry).unlink()  # what another run's prune does after this one's probe
            return super().fetch(entry, dest, previous)

    racing = PrunedMeanwhile(cache_dir)
    pipeline.synthesize(envs, tmp_path / "out", partial=False, all_envs=envs, cache=racing)
    assert (racing.hits, racing.misses) == (0, len(envs) + 1)
    assert tree(tmp_path / "out") == tree(tmp_path / "fresh")
    cache = SynthCache(cache_dir)
    pipeline.synthesize(envs, tmp_path / "again", partial=False, all_envs=envs, cache=cache)
    assert (cache.hits, cache.misses) == (len(envs) + 1, 0), "stored again"


# --------------------------------------------------------------------------------------------------
# The output a synth replaces: files with the same bytes are linked, never shared once promoted
# --------------------------------------------------------------------------------------------------


def inodes(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_ino for p in sorted(path.rglob("*")) if p.is_file()}


def test_a_synth_over_its_previous_output_links_the_unchanged_files_and_shares_none(tmp_path: Path) -> None:
    env_dir = tmp_path / "environments"
    shutil.copytree(ROOT / "environments", env_dir)
    out, cache_dir = tmp_path / "out", tmp_path / "cache"
    argv = ["--environments", str(env_dir), "--outdir", str(out)]
    assert app.main([*argv, "--cache-dir", str(cache_dir)]) == 0
    before = inodes(out)
    path = env_dir / "client-demo.yaml"
    data = yaml.safe_load(path.read_text())
    data.setdefault("api", {})["dbPoolSize"] = 21
    path.write_text(yaml.safe_dump(data))
    # One release changed: the others are cache hits, linked; of the changed one, what changed is new.
    assert app.main([*argv, "--cache-dir", str(cache_dir)]) == 0
    after = inodes(out)
    new = sorted(name for name in after if before.get(name) != after[name])
    assert "client-demo/Deployment.client-demo-api.k8s.yaml" in new
    assert "iotistica/Deployment.iotistica-api.k8s.yaml" not in new
    assert len(new) <= 6, new  # that Deployment, its release's REQUIRED-SECRETS.md, the marker, the shared charts' few
    assert all(p.stat().st_nlink == 1 for p in out.rglob("*") if p.is_file()), "no file stays shared"
    # Everything rendered again (--no-cache): every manifest is the same bytes, so the same file.
    assert app.main([*argv, "--no-cache"]) == 0
    again = inodes(out)
    new = sorted(name for name in again if after.get(name) != again[name])
    assert all(name == output.MARKER or name.endswith("REQUIRED-SECRETS.md") for name in new), new
    assert all(p.stat().st_nlink == 1 for p in out.rglob("*") if p.is_file())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "environments", "out"], "staging removed"
    fresh = tmp_path / "fresh"
    pipeline.synthesize(load_environments(env_dir), fresh, partial=False)
    assert tree(out) == tree(fresh)


def test_a_previous_file_is_reused_only_when_it_is_exactly_what_would_be_written(tmp_path: Path) -> None:
    from synth.files import FolderWriter

    previous, dest, elsewhere = tmp_path / "previous", tmp_path / "dest", tmp_path / "elsewhere"
    previous.mkdir()
    elsewhere.mkdir()
    data = b"kind: ConfigMap\n"
    for name in ("same", "edited", "mode", "shared", "longer"):
        (previous / name).write_bytes(data)
    (previous / "edited").write_bytes(b"kind: ConfigMaX\n")  # same size, other bytes
    (previous / "mode").chmod(0o600)
    (previous / "longer").write_bytes(data + b"# more\n")
    (elsewhere / "target").write_bytes(data)
    (previous / "symlink").symlink_to(elsewhere / "target")
    (elsewhere / "other-link").hardlink_to(previous / "shared")  # already linked elsewhere
    names = ("same", "edited", "mode", "shared", "longer", "symlink", "absent")
    with FolderWriter(dest, previous) as writer:
        for name in names:
            writer.write(name, memoryview(data))
    assert writer.linked == 1
    assert (dest / "same").stat().st_ino == (previous / "same").stat().st_ino
    for name in names:
        path = dest / name
        assert path.read_bytes() == data and not path.is_symlink(), name
        if name != "same":
            assert path.stat().st_nlink == 1, name
    assert (previous / "edited").read_bytes() == b"kind: ConfigMaX\n", "the previous output is only read"
    assert (elsewhere / "other-link").stat().st_nlink == 2 and (elsewhere / "target").read_bytes() == data


# --------------------------------------------------------------------------------------------------
# Parts of the output a synth replaces that hold a hit as the last synth recorded them stay in place
# --------------------------------------------------------------------------------------------------


def folder_inodes(path: Path) -> dict[str, int]:
    return {p.name: p.stat().st_ino for p in sorted(path.iterdir()) if p.is_dir()}


def _synth_twice(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """A synth with a cache, then a fresh synth for reference; returns (out, fresh, argv of the first)."""
    env_dir = tmp_path / "environments"
    shutil.copytree(ROOT / "environments", env_dir)
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    argv = ["--environments", str(env_dir), "--outdir", str(out), "--cache-dir", str(tmp_path / "cache")]
    assert app.main(argv) == 0
    assert app.main(["--environments", str(env_dir), "--outdir", str(fresh), "--no-cache"]) == 0
    return out, fresh, argv


def test_unchanged_parts_stay_in_place_and_the_changed_one_is_replaced(tmp_path: Path) -> None:
    out, _, argv = _synth_twice(tmp_path)
    folders, files = folder_inodes(out), inodes(out)
    path = tmp_path / "environments" / "client-demo.yaml"
    data = yaml.safe_load(path.read_text())
    data.setdefault("api", {})["dbPoolSize"] = 21
    path.write_text(yaml.safe_dump(data))
    assert app.main(argv) == 0
    after = folder_inodes(out)
    assert after.keys() == folders.keys()
    assert [name for name in folders if after[name] != folders[name]] == ["client-demo"], "only it was replaced"
    assert {k: v for k, v in inodes(out).items() if not k.startswith("client-demo/")} == {
        k: v for k, v in files.items() if not k.startswith("client-demo/")
    }, "the files of the others are the same files"
    fresh = tmp_path / "fresh2"
    assert app.main([*argv[:2], "--outdir", str(fresh), "--no-cache"]) == 0
    assert tree(out) == tree(fresh)
    assert all(p.stat().st_nlink == 1 for p in out.rglob("*") if p.is_file())


def test_hand_edits_in_an_unchanged_part_are_undone_by_the_next_synth(tmp_path: Path) -> None:
    out, fresh, argv = _synth_twice(tmp_path)
    folders = folder_inodes(out)
    edited = out / "client-demo" / "Deployment.client-demo-api.k8s.yaml"
    data = bytearray(edited.read_bytes())
    data[0] ^= 1  # same size, same inode, same folder: only the file's ctime tells
    with open(edited, "r+b") as f:
        f.write(data)
    (out / "iotistica" / "ConfigMap.added-by-hand.k8s.yaml").write_text("kind: ConfigMap\n")
    next(iter(sorted((out / "argocd").iterdir()))).unlink()
    assert app.main(argv) == 0
    assert tree(out) == tree(fresh), "every edit undone"
    after = folder_inodes(out)
    assert {name for name in folders if after[name] != folders[name]} == {
        "client-demo",
        "iotistica",
        "argocd",
        "cluster",
    }


def test_a_part_replaced_by_another_synth_before_the_promotion_is_written_again(tmp_path: Path) -> None:
    """Between the check of a part (while the worker renders) and the promotion (under the lock),
    another synth may promote a folder of its own in its place: the stamp of the folder tells."""
    out, fresh, _ = _synth_twice(tmp_path)
    envs = load_environments(tmp_path / "environments")
    cache = SynthCache(tmp_path / "cache")
    staging = tmp_path / "staging"
    staging.mkdir()
    built = pipeline.build(envs, staging / "out", all_envs=envs, cache=cache, previous=out)
    assert len(built.kept) == len(envs) + 1, "every part is kept"
    other = tmp_path / "other-synths-folder"
    shutil.copytree(out / "client-demo", other)
    (other / "Deployment.client-demo-api.k8s.yaml").write_text("another synth's output\n")
    shutil.rmtree(out / "client-demo")
    other.rename(out / "client-demo")
    output.promote(staging, out, envs, envs, False, built, cache)
    assert tree(out) == tree(fresh)


def test_a_record_that_cannot_be_trusted_keeps_nothing(tmp_path: Path) -> None:
    out, fresh, argv = _synth_twice(tmp_path)
    (record,) = (tmp_path / "cache" / OUTPUTS).iterdir()
    # Taken before the files were last changed (the same clock tick, say): racily clean, not trusted.
    os.utime(record, ns=(0, 0))
    folders = folder_inodes(out)
    assert app.main(argv) == 0
    after = folder_inodes(out)
    assert not [name for name in folders if after[name] == folders[name]], "every part written again"
    assert tree(out) == tree(fresh)
    # Damaged: ignored, the same.
    record.write_bytes(b'{"outdir": "' + bytes(out) + b'", "parts": [["x"]]')
    folders = folder_inodes(out)
    assert app.main(argv) == 0
    assert not [name for name in folders if folder_inodes(out)[name] == folders[name]]
    assert tree(out) == tree(fresh)


def test_a_record_that_cannot_be_written_does_not_fail_the_synth(tmp_path: Path) -> None:
    out, fresh, argv = _synth_twice(tmp_path)
    outputs = tmp_path / "cache" / OUTPUTS
    shutil.rmtree(outputs)
    outputs.write_text("not a folder\n")  # mkdir fails: the record is skipped
    assert app.main(argv) == 0
    assert tree(out) == tree(fresh)
    assert outputs.read_text() == "not a folder\n"
