"""The runbooks of docs/runbooks/, step by step where the suite can run them.

- Every `iotistica-k8s ...` command of a runbook is one the real CLI parses.
- The blocks marked ``<!-- runbook-test: NAME -->`` run as written (bash, the machine's kubectl) on the
  suite's real kube-apiserver, against a tenant synthesized by app.py into a temporary folder; the test
  checks what each block is said to do.
- The facts the offboarding table states about dist/ hold for every shipped release.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

import cli
from tests.helpers import ENV_DIR
from tests.realkube import KubeApiServer, apply_all

ROOT = Path(__file__).resolve().parent.parent
RUNBOOKS = ROOT / "docs" / "runbooks"
MARKED = re.compile(r"<!-- runbook-test: ([a-z-]+) -->\n```sh\n(.*?)```", re.S)


def blocks() -> dict[str, str]:
    """The marked shell blocks of every runbook, by name."""
    found: dict[str, str] = {}
    for page in sorted(RUNBOOKS.glob("*.md")):
        for name, body in MARKED.findall(page.read_text()):
            assert name not in found, f"{page.name}: block {name} twice"
            found[name] = body
    return found


def test_every_runbook_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    pages = sorted(p.name for p in RUNBOOKS.glob("*.md"))
    assert {"onboard-tenant.md", "change-tier.md", "offboard-tenant.md"} <= set(pages)
    for name in pages:
        assert f"(docs/runbooks/{name})" in readme, name


def test_every_cli_command_of_the_runbooks_parses() -> None:
    commands = [
        line.strip()
        for page in sorted(RUNBOOKS.glob("*.md"))
        for line in page.read_text().splitlines()
        if line.strip().startswith("iotistica-k8s ")
    ]
    assert len(commands) >= 5, commands
    parser = cli.parser()
    for command in commands:
        argv = shlex.split(command.split("#")[0])[1:]
        args = parser.parse_args(argv)  # SystemExit (a failure) on an unknown command or flag
        assert callable(args.func), command


# --------------------------------------------------------------------------------------------------
# On the real kube-apiserver
# --------------------------------------------------------------------------------------------------


ONBOARD, OFFBOARD = "rb-onboard", "rb-offboard"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with dist/ of two new tenants, written by app.py (the real synth), as `make synth` would."""
    root = tmp_path_factory.mktemp("runbooks")
    envs = root / "environments"
    envs.mkdir()
    shutil.copy(ENV_DIR / "client-demo.yaml", envs)
    shutil.copy(ENV_DIR.parent / "fleet.yaml", root)  # the cluster and the server's max_connections
    for release, extra in (
        (ONBOARD, ""),
        (OFFBOARD, "fleetNamespaces:\n  enabled: true\n  fleets:\n    - name: lab\n      maxAgents: 2\n"),
    ):
        (envs / f"{release}.yaml").write_text(f"release: {release}\nnamespace: {release}\ntier: starter\n{extra}")
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/python"), str(ROOT / "app.py"), "--environments", str(envs)]
        + ["--outdir", str(root / "dist"), "--no-cache", "--env", ONBOARD, "--env", OFFBOARD],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "CDK8S_CHECK_UPGRADE": "false"},
    )
    assert proc.returncode == 0, proc.stderr
    return root


def run_block(api: KubeApiServer, name: str, cwd: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """A marked block of the runbooks, run by bash as written, kubectl on the suite's server."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl missing (not on PATH)")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "KUBECONFIG": str(api.kubeconfig), "HOME": str(cwd)}
    script = blocks()[name]
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env | variables, capture_output=True, text=True, timeout=120
    )


def objects(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f.name, doc) for f in sorted(folder.glob("*.k8s.yaml")) for doc in yaml.safe_load_all(f.read_text()) if doc
    ]


def required_secret_commands(folder: Path) -> list[str]:
    return [line for line in (folder / "REQUIRED-SECRETS.md").read_text().splitlines() if line.startswith("kubectl ")]


def test_onboarding_namespace_then_secrets_on_a_real_api_server(kube_api: KubeApiServer, project: Path) -> None:
    names = {"RELEASE": ONBOARD, "NS": ONBOARD}
    folder = project / "dist" / ONBOARD
    # Before the namespace: the check reports the Secrets (and the namespace) missing.
    before = run_block(kube_api, "secrets-present", project, **names)
    assert before.returncode != 0 and "NotFound" in before.stderr, before
    proc = run_block(kube_api, "namespace", project, **names)
    assert proc.returncode == 0, proc.stderr
    ns = kube_api.get({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ONBOARD}})
    assert ns is not None and ns["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == "Prune=false"
    commands = required_secret_commands(folder)
    assert len(commands) >= 5
    missing = run_block(kube_api, "secrets-present", project, **names)
    assert missing.returncode != 0
    for command in commands:  # every Secret the check names as missing is one REQUIRED-SECRETS.md creates
        secret = command.split()[6]
        assert f'secrets "{secret}" not found' in missing.stderr, (secret, missing.stderr)
    # The commands of REQUIRED-SECRETS.md as written (placeholder values), then the check passes.
    for command in commands:
        kube_api.kubectl(*shlex.split(command)[1:])
    present = run_block(kube_api, "secrets-present", project, **names)
    assert (present.returncode, present.stderr) == (0, ""), present.stderr
    assert all(c.split()[6] in present.stdout for c in commands)


def test_offboarding_keeps_namespaces_until_deleted_on_purpose(
    kube_dist: Any, kube_api: KubeApiServer, project: Path
) -> None:
    names = {"RELEASE": OFFBOARD, "NS": OFFBOARD}
    folder = project / "dist" / OFFBOARD
    failures = apply_all(kube_api, objects(folder))
    assert failures == {}, failures
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api-jwt-rb", "namespace": OFFBOARD}}
    kube_api.apply({**secret, "stringData": {"token": "t"}})
    # Step 4: the objects of the tenant's folder one commit earlier, all but its Namespaces.
    old = project / "old"
    shutil.copytree(folder, old / "dist" / OFFBOARD)
    proc = run_block(kube_api, "delete-objects", project, OLD=str(old), **names)
    assert proc.returncode == 0, proc.stderr
    for _, obj in objects(folder):
        live = kube_api.get(obj)
        if obj["kind"] == "Namespace":
            assert live is not None and "deletionTimestamp" not in live["metadata"], obj["metadata"]["name"]
        else:
            gone = live is None or "deletionTimestamp" in live["metadata"]
            assert gone, f"{obj['kind']}/{obj['metadata']['name']} is still there"
    assert kube_api.get(secret) is not None  # a Secret the operator made stays with its namespace
    # Step 5: what is left, then the namespaces deleted on purpose.
    left = run_block(kube_api, "leftovers", project, **names)
    assert left.returncode == 0, left.stderr
    assert f"fleet-{OFFBOARD}-lab" in left.stdout and "api-jwt-rb" in left.stdout
    proc = run_block(kube_api, "delete-namespaces", project, **names)
    assert proc.returncode == 0, proc.stderr
    for name in (OFFBOARD, f"fleet-{OFFBOARD}-lab"):
        live = kube_api.get({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        # No namespace controller runs beside this API server: a deleted namespace stays Terminating.
        assert live is None or "deletionTimestamp" in live["metadata"], name


# --------------------------------------------------------------------------------------------------
# The facts the offboarding table states about dist/
# --------------------------------------------------------------------------------------------------


def test_the_offboarding_table_holds_for_the_shipped_dist() -> None:
    releases = sorted(p.stem for p in ENV_DIR.glob("*.yaml"))
    for release in releases:
        objs = objects(ROOT / "dist" / release)
        namespaces = [o for _, o in objs if o["kind"] == "Namespace"]
        assert namespaces, release
        for ns in namespaces:  # kept by pruning, deleted by a cascading delete of the Application
            options = ns["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-options", "")
            assert "Prune=false" in options and "Delete=false" not in options, (release, options)
        for _, o in objs:  # the Secrets are never objects of dist/ (so never deleted by Argo CD itself)
            assert o["kind"] != "Secret", release
        for _, o in objs:  # StatefulSet claims come from templates, not objects of dist/
            if o["kind"] == "StatefulSet":
                for claim in o["spec"].get("volumeClaimTemplates", []):
                    assert not any(x["metadata"]["name"] == claim["metadata"]["name"] for _, x in objs)


def test_the_generated_applications_do_not_cascade_today() -> None:
    """[Argo CD layout] The table's "no finalizer" column: the coordinator adjusts this with the layout."""
    for path in sorted((ROOT / "dist" / "argocd").glob("Application.*.k8s.yaml")):
        app = yaml.safe_load(path.read_text())
        assert "resources-finalizer.argocd.argoproj.io" not in app["metadata"].get("finalizers", []), path.name


def test_what_the_onboarding_runbook_says_a_missing_license_does() -> None:
    """The wait, the retries and the message of the stream-key-resolver hook, as the runbook quotes them."""
    page = (RUNBOOKS / "onboard-tenant.md").read_text()
    script = (ROOT / "constructs" / "scripts" / "secret_jobs.py").read_text()
    assert 'print(f"waiting for Secret {namespace}/{name} ...", flush=True)' in script
    assert "not found after {wait_seconds:g}s: create it " in script and "waiting for Secret <NS>/<name> ..." in page
    for release in sorted(p.stem for p in ENV_DIR.glob("*.yaml")):
        job = yaml.safe_load((ROOT / "dist" / release / f"Job.{release}-stream-key-resolver.k8s.yaml").read_text())
        env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["LICENSE_WAIT_SECONDS"] == "120" and job["spec"]["backoffLimit"] == 2, release
        assert job["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"
    assert "for 120 s\n  (`LICENSE_WAIT_SECONDS`)" in page and "(`backoffLimit: 2`)" in page
