"""The runbooks of docs/runbooks/, step by step where the suite can run them.

- Every `iotistica-k8s ...` command of a runbook is one the real CLI parses.
- The blocks marked ``<!-- runbook-test: NAME -->`` run as written (bash, the machine's kubectl) on the
  suite's real kube-apiserver, against a tenant synthesized by app.py into a temporary folder; the test
  checks what each block is said to do.
- The bootstrap runbook's blocks that need no Argo CD controller run on the same server with the Argo CD
  v3.5.1 CRDs of ../shared/crds: the platform project, the platform Application and the root Application
  are accepted as written.
- The facts the offboarding table states about dist/ hold for every shipped release.
"""

from __future__ import annotations

import json
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
    assert {"bootstrap.md", "onboard-tenant.md", "change-tier.md", "offboard-tenant.md"} <= set(pages)
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
CLUSTER = "in-cluster"  # the default cluster (fleet.yaml), where the tenants' Namespaces are synced from


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


def tenant_file(folder: Path) -> dict[str, Any]:
    """What the ApplicationSet's Git files generator reads for the tenant of ``folder``."""
    return json.loads((folder / "argocd-tenant.json").read_text())


def generated_application(dist: Path, release: str) -> dict[str, Any]:
    """The Application the ApplicationSet makes for ``release``: its Go template filled with the tenant's
    argocd-tenant.json and ``path.path`` (the file's folder), as Argo CD's Git files generator gives them."""
    appset = yaml.safe_load((dist / "argocd" / "ApplicationSet.iotistica-tenants.k8s.yaml").read_text())
    params = {**tenant_file(dist / release), "path": {"path": f"dist/{release}"}}

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fill(v) for v in node]
        if isinstance(node, str):

            def lookup(m: re.Match[str]) -> str:
                value: Any = params
                for key in m.group(1).split("."):
                    value = value[key]  # KeyError: missingkey=error, as the ApplicationSet says
                return str(value)

            return re.sub(r"\{\{ \.([a-z.]+) \}\}", lookup, node)
        return node

    template = fill(appset["spec"]["template"])
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", **template}


def required_secret_commands(folder: Path) -> list[str]:
    return [line for line in (folder / "REQUIRED-SECRETS.md").read_text().splitlines() if line.startswith("kubectl ")]


def test_onboarding_namespace_then_secrets_on_a_real_api_server(kube_api: KubeApiServer, project: Path) -> None:
    names = {"RELEASE": ONBOARD, "NS": ONBOARD, "CLUSTER": CLUSTER}
    folder = project / "dist" / ONBOARD
    assert tenant_file(folder)["cluster"]["name"] == CLUSTER
    assert not [n for n, o in objects(folder) if o["kind"] == "Namespace"]  # not in the tenant's folder
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
    names = {"RELEASE": OFFBOARD, "NS": OFFBOARD, "CLUSTER": CLUSTER}
    folder = project / "dist" / OFFBOARD
    platform = project / "dist" / "cluster" / CLUSTER
    # The tenant as the platform Application (its Namespaces, its ClusterRoleBinding) and its own
    # Application (its folder) made it.
    owned = [(n, o) for n, o in objects(platform) if n.startswith(("Namespace.", "ClusterRoleBinding."))]
    owned = [(n, o) for n, o in owned if OFFBOARD in n]
    assert {n for n, _ in owned} == {
        f"Namespace.{OFFBOARD}.k8s.yaml",
        f"Namespace.fleet-{OFFBOARD}-lab.k8s.yaml",
        f"ClusterRoleBinding.{OFFBOARD}-virtual-agent-manager.k8s.yaml",
    }
    failures = apply_all(kube_api, owned + objects(folder))
    assert failures == {}, failures
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api-jwt-rb", "namespace": OFFBOARD}}
    kube_api.apply({**secret, "stringData": {"token": "t"}})
    app = generated_application(project / "dist", OFFBOARD)
    assert app["metadata"]["name"] == OFFBOARD and "finalizers" not in app["metadata"]
    assert app["spec"]["source"]["path"] == f"dist/{OFFBOARD}" and app["spec"]["project"] == OFFBOARD
    kube_api.apply(app)
    # Step 4: the Application the ApplicationSet left behind goes, and only it (no finalizer: not cascading).
    proc = run_block(kube_api, "delete-application", project, **names)
    assert proc.returncode == 0, proc.stderr
    assert kube_api.get(app) is None  # gone at once: nothing (no resources finalizer) holds it
    assert all(kube_api.get(obj) is not None for _, obj in objects(folder))
    # Then the objects of the tenant's folder one commit earlier (argocd-tenant.json is no object).
    old = project / "old"
    shutil.copytree(folder, old / "dist" / OFFBOARD)
    tenant_json = old / "dist" / OFFBOARD / "argocd-tenant.json"
    refused = kube_api.kubectl("delete", "--dry-run=server", "-f", str(tenant_json), check=False)
    assert refused.returncode != 0 and "Kind" in refused.stderr, refused  # why the block removes it first
    proc = run_block(kube_api, "delete-objects", project, OLD=str(old), **names)
    assert proc.returncode == 0, proc.stderr
    for _, obj in objects(folder):
        live = kube_api.get(obj)
        gone = live is None or "deletionTimestamp" in live["metadata"]
        assert gone, f"{obj['kind']}/{obj['metadata']['name']} is still there"
    for name, obj in owned:  # the block leaves what the platform Application owns alone
        live = kube_api.get(obj)
        assert live is not None and "deletionTimestamp" not in live["metadata"], name
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
# The bootstrap runbook, where no Argo CD controller is needed
# --------------------------------------------------------------------------------------------------


def test_bootstrap_blocks_on_a_real_api_server_with_the_argo_cd_crds(
    kube_dist: Any, kube_api: KubeApiServer, project: Path
) -> None:
    names = {"CLUSTER": CLUSTER}
    argocd = project / "dist" / "argocd"
    # Step 2: the flags docs/argocd.md names, set in the ConfigMap Argo CD's install ships (empty).
    params = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "argocd-cmd-params-cm", "namespace": "argocd"},
    }
    assert kube_api.get(params) is None
    kube_api.apply(params)
    try:
        proc = run_block(kube_api, "progressive-syncs", project, **names)
        assert proc.returncode == 0, proc.stderr
        live = kube_api.get(params)
        assert live is not None
        data = live["data"]
        flags = ("applicationsetcontroller.enable.progressive.syncs", "applicationsetcontroller.enable.policy.override")
        assert {k: data.get(k) for k in flags} == dict.fromkeys(flags, "true")
        guide = (ROOT / "docs" / "argocd.md").read_text()
        assert all(f'`{flag}: "true"`' in guide for flag in flags)
    finally:
        kube_api.kubectl("delete", "configmap", "-n", "argocd", "argocd-cmd-params-cm")
    # Step 3: the platform project before anything in it; the root Application is in that project.
    root = yaml.safe_load((argocd / "Application.iotistica-apps.k8s.yaml").read_text())
    assert root["spec"]["project"] == "iotistica-platform" and root["spec"]["source"]["path"] == "dist/argocd"
    block = blocks()["platform"]
    assert block.index("AppProject.iotistica-platform") < block.index("Application.iotistica-cluster-")
    # The kube-apiserver takes an Application whose project does not exist: only Argo CD refuses it.
    orphan = {**root, "metadata": {**root["metadata"], "name": "rb-no-project"}}
    orphan = {**orphan, "spec": {**root["spec"], "project": "rb-no-such-project"}}
    orphan_file = project / "orphan.yaml"
    orphan_file.write_text(yaml.safe_dump(orphan))
    kube_api.kubectl("apply", "--dry-run=server", "-f", str(orphan_file))
    proc = run_block(kube_api, "platform", project, **names)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("iotistica-platform"), proc.stdout
    # Step 4: the root Application, then what it syncs, as written.
    proc = run_block(kube_api, "root", project, **names)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("iotistica-platform dist/argocd"), proc.stdout
    for name in (
        "AppProject.iotistica-platform",
        f"Application.iotistica-cluster-{CLUSTER}",
        "Application.iotistica-apps",
    ):
        obj = yaml.safe_load((argocd / f"{name}.k8s.yaml").read_text())
        live = kube_api.get(obj)
        assert live is not None and live["spec"] == obj["spec"], name
    # The AppProjects sync before the Applications and the ApplicationSet that need them.
    for path in sorted(argocd.glob("*.k8s.yaml")):
        obj = yaml.safe_load(path.read_text())
        wave = obj["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", "0")
        assert wave == ("-1" if obj["kind"] == "AppProject" else "0"), path.name


# --------------------------------------------------------------------------------------------------
# The facts the offboarding table states about dist/
# --------------------------------------------------------------------------------------------------


def test_the_offboarding_table_holds_for_the_shipped_dist() -> None:
    dist = ROOT / "dist"
    appset = yaml.safe_load((dist / "argocd" / "ApplicationSet.iotistica-tenants.k8s.yaml").read_text())
    # The Application of a removed tenant: kept by the ApplicationSet (create-update), and not cascading
    # where it is deleted (preserveResourcesOnDeletion: the controller gives it no resources finalizer).
    assert appset["spec"]["syncPolicy"] == {"applicationsSync": "create-update", "preserveResourcesOnDeletion": True}
    assert "finalizers" not in appset["spec"]["template"]["metadata"]
    assert [g["git"]["files"] for g in appset["spec"]["generators"]] == [[{"path": "dist/*/argocd-tenant.json"}]]
    root = yaml.safe_load((dist / "argocd" / "Application.iotistica-apps.k8s.yaml").read_text())
    assert root["spec"]["source"]["path"] == "dist/argocd" and root["spec"]["syncPolicy"]["automated"]["prune"]
    releases = sorted(p.stem for p in ENV_DIR.glob("*.yaml"))
    for release in releases:
        folder = dist / release
        tenant = tenant_file(folder)
        cluster = dist / "cluster" / tenant["cluster"]["name"]
        platform = yaml.safe_load(
            (dist / "argocd" / f"Application.iotistica-cluster-{cluster.name}.k8s.yaml").read_text()
        )
        assert platform["spec"]["project"] == "iotistica-platform", release
        assert platform["spec"]["source"]["path"] == f"dist/cluster/{cluster.name}", release
        assert platform["spec"]["syncPolicy"]["automated"]["prune"] is True, release
        objs = objects(folder)
        # the tenant's folder holds no Namespace (nor any cluster-scoped object): a deleted tenant
        # Application could not take a namespace with it
        assert not [n for n, o in objs if o["kind"] == "Namespace" or "namespace" not in o["metadata"]], release
        # its Namespaces are in the platform folder, kept by pruning, with no Delete=false
        namespaces = [
            o
            for _, o in objects(cluster)
            if o["kind"] == "Namespace"
            and (o["metadata"]["name"] == tenant["namespace"]
                 or o["metadata"]["labels"].get("iotistica.com/customer-id") == tenant["namespace"])
        ]  # fmt: skip
        assert tenant["namespace"] in {ns["metadata"]["name"] for ns in namespaces}, release
        for ns in namespaces:
            options = ns["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-options", "")
            assert "Prune=false" in options and "Delete=false" not in options, (release, options)
        # its ClusterRoleBinding and its AppProject carry no Prune=false: pruned when its files go
        binding = yaml.safe_load((cluster / f"ClusterRoleBinding.{release}-virtual-agent-manager.k8s.yaml").read_text())
        project = yaml.safe_load((dist / "argocd" / f"AppProject.{release}.k8s.yaml").read_text())
        for obj in (binding, project):
            options = obj["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-options", "")
            assert "Prune=false" not in options, (release, obj["kind"])
        for _, o in objs:  # the Secrets are never objects of dist/ (so never deleted by Argo CD itself)
            assert o["kind"] != "Secret", release
        for _, o in objs:  # StatefulSet claims come from templates, not objects of dist/
            if o["kind"] == "StatefulSet":
                for claim in o["spec"].get("volumeClaimTemplates", []):
                    assert not any(x["metadata"]["name"] == claim["metadata"]["name"] for _, x in objs)


def test_no_application_of_the_layout_cascades() -> None:
    """The table's "nothing cascades": no Application of dist/argocd/ and none the ApplicationSet makes has
    Argo CD's resources finalizer."""
    for path in sorted((ROOT / "dist" / "argocd").glob("Application.*.k8s.yaml")):
        app = yaml.safe_load(path.read_text())
        assert "resources-finalizer.argocd.argoproj.io" not in app["metadata"].get("finalizers", []), path.name
    for release in sorted(p.stem for p in ENV_DIR.glob("*.yaml")):
        app = generated_application(ROOT / "dist", release)
        assert app["metadata"]["name"] == release and "finalizers" not in app["metadata"], release


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
        assert job["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-2"
    assert "for 120 s\n  (`LICENSE_WAIT_SECONDS`)" in page and "(`backoffLimit: 2`)" in page
