"""The suite holds for any valid fleet, proven on itself: a copy of the project grows one client of each
tier by the README's steps ("Adding a client": `iotistica-k8s new`, `make synth`), and the fleet-level
checks pass on the copy: `validate --strict`, `docs --check`, and the tests that compare dist/ with a
fresh synth, the Applications with environments/, and the fleet's rules.

One copy per module (the heavy parts linked, as tests/test_synth_safety.py does); every check runs as a
subprocess in the copy, so it reads the copy's environments/ and dist/ and nothing of this checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TIERS = ("demo", "starter", "standard", "enterprise")
ENV = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "CDK8S_CHECK_UPGRADE": "false"}
ENV.pop("CDK8S_OUTDIR", None)
#: Linked, not copied: installed tools, the generated CRD bindings (11 MB), the synth cache.
LINKED = (".venv", ".venv-tools", "node_modules", "imports", ".synth-cache")
#: The fleet-level tests, run in the copy (they read its environments/ and dist/).
FLEET_TESTS = (
    "tests/test_fleet_validation.py",
    "tests/test_cli.py::test_every_shipped_environment_passes_strict",
    "tests/test_lifecycle_manifests.py::test_one_project_per_environment_one_application_set_and_the_platform_applications",
    "tests/test_argocd_projects.py::test_every_object_of_every_application_is_permitted_by_its_project",
    "tests/test_argocd_projects.py::test_a_tenant_project_permits_nothing_of_another_tenant_and_nothing_cluster_wide",
    "tests/test_graph.py::test_docs_pages_are_current_and_check_catches_staleness",
    "tests/test_graph.py::test_a_release_owns_its_page_and_the_index_names_none",
    "tests/test_dist.py::test_dist_equals_a_fresh_synth",
)


def run(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=cwd, env=ENV, capture_output=True, text=True, timeout=900)


def checkout_copy(dest: Path) -> Path:
    """The files git tracks (as they are in the work tree, uncommitted edits included), the rest linked."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    linked = set(LINKED)
    for rel in filter(None, tracked.split("\0")):
        if rel.split("/", 1)[0] in linked or not (ROOT / rel).is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)  # mtimes kept: make sees the lock files older than its stamps
    (ROOT / ".synth-cache").mkdir(exist_ok=True)
    for name in LINKED:
        if (ROOT / name).exists():
            (dest / name).symlink_to((ROOT / name).resolve())
    return dest


@pytest.fixture(scope="module")
def grown(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project copied, one client per tier added with `new`, `make synth` run in it."""
    base = tmp_path_factory.mktemp("grown")
    if (ROOT.parent / "shared").is_dir():  # ../shared (tests of real components find it there)
        (base / "shared").symlink_to(ROOT.parent / "shared")
    project = base / "project"
    project.mkdir()
    checkout_copy(project)
    py = str(project / ".venv" / "bin" / "python")
    # The seed's fleet fills most of its database server (320 of 490 connections): the new clients go on
    # a server of their own, declared once in the fleet file (docs/fleet.md).
    fleet = yaml.safe_load((project / "fleet.yaml").read_text())
    fleet["databaseServers"].append({"name": "clients-cnpg-cl02", "maxConnections": 500})
    (project / "fleet.yaml").write_text(yaml.safe_dump(fleet, sort_keys=False))
    for tier in TIERS:
        name = f"tenant-{tier}"
        proc = run(project, py, "cli.py", "new", name, "--tier", tier, "--database-server", "clients-cnpg-cl02")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.endswith(
            f"; next: make synth ENV={name}, then commit this file and dist/ (README: Adding a client)\n"
        )
    make = ["make", "-s", "-o", ".venv/.stamp", "-o", "node_modules/.stamp", "-o", ".venv-tools/.stamp", "synth"]
    proc = run(project, *make)
    assert proc.returncode == 0, proc.stderr
    written = proc.stdout.strip().splitlines()[-1]
    assert written.startswith("synth: dist: ") and written.endswith(", 0 removed"), proc.stdout
    for tier in TIERS:
        assert f"tenant-{tier}" in written
    return project


def test_the_copy_holds_a_client_of_every_tier(grown: Path) -> None:
    for tier in TIERS:
        data = yaml.safe_load((grown / "environments" / f"tenant-{tier}.yaml").read_text())
        assert data["tier"] == tier
        assert (grown / "dist" / f"tenant-{tier}" / "REQUIRED-SECRETS.md").is_file()
        assert (grown / "dist" / "argocd" / f"AppProject.tenant-{tier}.k8s.yaml").is_file()
        assert (grown / "dist" / f"tenant-{tier}" / "argocd-tenant.json").is_file()


def test_validate_strict_and_docs_check_pass_on_the_grown_fleet(grown: Path) -> None:
    py = str(grown / ".venv" / "bin" / "python")
    proc = run(grown, py, "cli.py", "validate", "--strict")
    count = len(list((grown / "environments").glob("*.yaml")))
    assert count == len(list((ROOT / "environments").glob("*.yaml"))) + len(TIERS)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"ok: {count} environment(s) valid"
    proc = run(grown, py, "cli.py", "docs", "--check")
    assert proc.returncode == 0 and proc.stdout == "docs: current\n", proc.stderr


def test_the_fleet_level_tests_pass_on_the_grown_fleet(grown: Path) -> None:
    py = str(grown / ".venv" / "bin" / "python")
    proc = run(grown, py, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "-q", "-rfEs", *FLEET_TESTS)
    assert proc.returncode == 0, proc.stdout[-4000:]
    summary = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in .*", summary), proc.stdout[-4000:]  # nothing failed or skipped


def test_two_tenant_branches_merge_without_conflict_and_synth_changes_nothing(tmp_path: Path) -> None:
    """A tenant owns its files: two branches of a copy of the project each add a client by the README's steps
    (`new`, `make synth`, commit), git merges them with no conflict, and `make synth` on the merge writes
    nothing (every shared file was already right on both sides)."""
    project = checkout_copy(tmp_path)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    for argv in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "base"]):
        assert run(project, *git, *argv).returncode == 0
    py = str(project / ".venv" / "bin" / "python")
    make = ["make", "-s", "-o", ".venv/.stamp", "-o", "node_modules/.stamp", "-o", ".venv-tools/.stamp", "synth"]
    for branch, tier in (("client-a", "demo"), ("client-b", "starter")):
        assert run(project, *git, "checkout", "-q", "-b", branch, "main").returncode == 0
        proc = run(project, py, "cli.py", "new", branch, "--tier", tier)
        assert proc.returncode == 0, proc.stderr
        proc = run(project, *make, f"ENV={branch}")
        assert proc.returncode == 0, proc.stderr
        assert run(project, *git, "add", "-A").returncode == 0
        assert run(project, *git, "commit", "-q", "-m", f"add {branch}").returncode == 0
    assert run(project, *git, "checkout", "-q", "client-a").returncode == 0
    merged = run(project, *git, "merge", "--no-edit", "client-b")
    assert merged.returncode == 0, merged.stdout + merged.stderr
    proc = run(project, *make)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("synth: dist: 0 written, "), proc.stdout
    status = run(project, *git, "status", "--porcelain", "--untracked-files=all")
    assert status.stdout == "", status.stdout
