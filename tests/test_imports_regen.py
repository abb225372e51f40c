"""imports/ is generated: it must equal a fresh `scripts/import-crds.sh` run over ../shared/crds.

Skipped when the CRD sources are absent (a fresh clone without ../shared) or the cdk8s CLI is not
installed (`make setup`). Takes about 30-40 s on two cores (one `cdk8s import` per API group).
"""

from __future__ import annotations

import filecmp
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CRDS = Path(os.environ.get("CRDS_DIR") or ROOT.parent / "shared" / "crds")
IMPORTS = ROOT / "imports"
SCRIPT = ROOT / "scripts" / "import-crds.sh"
CDK8S = ROOT / "node_modules" / ".bin" / "cdk8s"
IGNORED = {"__pycache__"}


def tree(root: Path) -> set[str]:
    files: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED)
        files.update(os.path.relpath(os.path.join(dirpath, f), root) for f in filenames)
    return files


@pytest.mark.timeout(300)
@pytest.mark.skipif(not CRDS.is_dir(), reason=f"CRD sources not found at {CRDS} (fresh clone)")
@pytest.mark.skipif(not CDK8S.exists(), reason="cdk8s CLI not installed (run `make setup`)")
def test_imports_match_a_fresh_regeneration(tmp_path: Path) -> None:
    assert IMPORTS.is_dir(), "imports/ is missing: run `make imports`"
    out = tmp_path / "imports"
    env = dict(
        os.environ, CRDS_DIR=str(CRDS), JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20", CDK8S_CHECK_UPGRADE="false"
    )
    proc = subprocess.run([str(SCRIPT), str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, f"import-crds.sh failed:\n{proc.stdout}{proc.stderr}"

    committed, fresh = tree(IMPORTS), tree(out)
    assert sorted(committed - fresh) == [], "files in imports/ that a regeneration does not produce"
    assert sorted(fresh - committed) == [], "files a regeneration produces that imports/ lacks: run `make imports`"
    _, mismatch, errors = filecmp.cmpfiles(IMPORTS, out, sorted(committed), shallow=False)
    assert mismatch == [] and errors == [], (
        f"imports/ differs from a fresh regeneration ({mismatch + errors}): run `make imports`, never edit imports/"
    )
