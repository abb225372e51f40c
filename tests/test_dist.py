"""The committed dist/ is exactly what a fresh synth writes (ArgoCD deploys what is committed)."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def synth_demo(out: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--env", "client-demo", "--outdir", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )


def test_dist_equals_a_fresh_synth(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--no-cache", "--outdir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    # A normal synth prints nothing alarming: its one summary line, every folder written into the new one.
    folders = sorted(p.name for p in (ROOT / "dist").iterdir() if p.is_dir())
    assert proc.stderr == "" and proc.stdout.count("\n") == 1, proc.stdout
    assert proc.stdout.startswith(f"synth: {out}: {len(folders)} written (")
    assert proc.stdout.endswith(", 0 unchanged, 0 removed\n")
    fresh, committed = tree(out), tree(ROOT / "dist")
    assert sorted(fresh) == sorted(committed), "run `make synth` and commit dist/"
    changed = [name for name in fresh if fresh[name] != committed[name]]
    assert not changed, f"dist/ is stale for {changed[:5]}: run `make synth` and commit dist/"
    assert filecmp.dircmp(out, ROOT / "dist").left_only == []


def test_synth_is_deterministic(tmp_path: Path) -> None:
    outs = []
    for i in range(2):
        out = tmp_path / f"d{i}"
        synth_demo(out)
        outs.append(tree(out))
    assert outs[0] == outs[1]


def test_partial_synth_replaces_only_that_release(tmp_path: Path) -> None:
    # A previous synth's output (marker + generated folders); `iotistica` is another existing release.
    out = tmp_path / "dist"
    (out / "iotistica").mkdir(parents=True)
    (out / ".iotistica-k8s-output").write_text("marker\n")
    (out / "iotistica" / "Deployment.iotistica-x.k8s.yaml").write_text("kept\n")
    (out / "client-demo").mkdir()
    (out / "client-demo" / "stale.k8s.yaml").write_text("stale\n")
    synth_demo(out)
    assert (out / "iotistica" / "Deployment.iotistica-x.k8s.yaml").read_text() == "kept\n"
    assert not (out / "client-demo" / "stale.k8s.yaml").exists(), "stale files of a release are removed"
    assert (out / "client-demo" / "Deployment.client-demo-api.k8s.yaml").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist"], "no staging folder left behind"
