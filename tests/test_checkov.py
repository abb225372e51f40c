"""Checkov, the scanner platform teams run on manifests, over every object of dist/: no failed check,
and every skip reasoned and needed (docs/hardening.md).

One Checkov run per session (``-o json``), over a scratch folder that holds four trees:

- ``dist/``: a copy of the committed dist/, as it is;
- ``dist-stripped/``: the same objects with every Checkov skip annotation removed, so each check is
  evaluated where dist/ skips it: a skip whose check passes there is stale;
- ``optional/`` and ``optional-stripped/``: client-demo with the parts no shipped environment runs
  (Node-RED with its writable root, Redis without auth, the MQTT routes), so their skips are held to the
  same rules before an environment turns them on;
- ``bad/`` and ``bad-stripped/``: two workloads of dist/ tampered with (a skip without a reason, a
  skip whose check passes), proving that the checks below catch both.

Checkov runs from its own venv (``.venv-tools``, ``make checkov-venv``; ``make test`` creates it), with
no download and no update check: nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
CHECKOV = ROOT / ".venv-tools" / "bin" / "checkov"
#: The version requirements-checkov.lock pins (the peer teams' scanner).
VERSION = "3.3.30"
#: Annotation prefixes Checkov reads as skips (checkov/kubernetes/kubernetes_utils.py); dist/ uses the first.
SKIP_PREFIXES = ("checkov.io/skip", "bridgecrew.io/skip", "cortex.io/skip")
SKIP_KEY = re.compile(r"^checkov\.io/skip[1-9][0-9]*$")
SKIP_VALUE = re.compile(r"^(CKV_K8S_[0-9]+)=(.*)$")
#: A reason a reviewer can verify says what and why: a few words at least.
MIN_REASON = 30

#: The two tampered workloads of ``bad/``: (file, check id, annotation value). The dashboard runs
#: as a uid of 10000 or more, so a CKV_K8S_40 skip on it is stale; the API's CKV_K8S_35 skip loses
#: its reason.
STALE = (
    "client-demo/Deployment.client-demo-dashboard.k8s.yaml",
    "CKV_K8S_40",
    "CKV_K8S_40=made up for this test: the image would need its own uid 101",
)
REASONLESS = ("client-demo/Deployment.client-demo-api.k8s.yaml", "CKV_K8S_35", "CKV_K8S_35")


def documents(root: Path) -> Iterable[tuple[str, dict[str, Any]]]:
    """(path relative to root, object) of every YAML document under root."""
    for path in sorted(root.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict):
                yield path.relative_to(root).as_posix(), doc


def resource_id(obj: dict[str, Any]) -> str:
    """How Checkov names a Kubernetes object in its report: Kind.namespace.name."""
    meta = obj.get("metadata", {})
    return f"{obj['kind']}.{meta.get('namespace', 'default')}.{meta['name']}"


def skips_of(obj: dict[str, Any]) -> dict[str, str]:
    """The object's skip annotations, as written: key -> value."""
    annotations = obj.get("metadata", {}).get("annotations") or {}
    return {k: v for k, v in annotations.items() if any(p in k for p in SKIP_PREFIXES)}


def strip(src: Path, dest: Path) -> None:
    """Copy every manifest of src to dest without its skip annotations."""
    for rel, _ in {rel: None for rel, _ in documents(src)}.items():
        docs = []
        for doc in yaml.safe_load_all((src / rel).read_text(encoding="utf-8")):
            if isinstance(doc, dict):
                annotations = doc.get("metadata", {}).get("annotations")
                if annotations:
                    for key in list(skips_of(doc)):
                        del annotations[key]
            docs.append(doc)
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")


def tamper(dest: Path) -> None:
    """``bad/``: the workload of STALE with one more skip, the one of REASONLESS with a skip's reason cut."""
    for rel, check, value in (STALE, REASONLESS):
        doc = yaml.safe_load((DIST / rel).read_text(encoding="utf-8"))
        annotations = doc["metadata"].setdefault("annotations", {})
        same = [k for k, v in skips_of(doc).items() if v.startswith(f"{check}=")]
        annotations[same[0] if same else f"checkov.io/skip{len(skips_of(doc)) + 1}"] = value
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


#: client-demo with the optional parts on (keys as in environment files).
OPTIONAL = {
    "nodered": {"enabled": True},
    "redis": {"auth": {"enabled": False}},
    "edge": {"routes": {"mqtt": True, "websockets": True}},
}


def write_optional(dest: Path) -> None:
    """``optional/``: every object of client-demo with OPTIONAL, one file each, as dist/ lays them out."""
    from tests.helpers import env_from, synth_env

    dest.mkdir(parents=True)
    for obj in synth_env(env_from("client-demo", **OPTIONAL)):
        name = f"{obj['kind']}.{obj['metadata']['name']}.k8s.yaml"
        (dest / name).write_text(yaml.safe_dump(obj, sort_keys=False), encoding="utf-8")


def results(report: dict[str, Any], tree: str, kind: str) -> list[dict[str, Any]]:
    """The report's ``failed_checks``/``skipped_checks``/``passed_checks`` of one tree of the scan."""
    prefix = f"/{tree}/"
    return [r for r in report["results"][kind] if r["file_path"].startswith(prefix)]


def skip_problems(root: Path) -> list[str]:
    """Every skip annotation under root that is not ``checkov.io/skip<N>: CKV_K8S_<id>=<reason>``
    with a reason of a few words (Checkov itself would take a bare id, "No comment provided")."""
    problems = []
    for rel, obj in documents(root):
        for key, value in skips_of(obj).items():
            where = f"{rel}: {resource_id(obj)}: {key}"
            match = SKIP_VALUE.match(str(value))
            if not SKIP_KEY.match(key):
                problems.append(f"{where}: not a checkov.io/skip<N> key")
            elif not match:
                problems.append(f"{where}: {value!r} is not CKV_K8S_<id>=<reason>")
            elif len(match.group(2).strip()) < MIN_REASON:
                problems.append(f"{where}: {match.group(1)} has no reason a reviewer can verify ({value!r})")
    return problems


def stale_skips(report: dict[str, Any], tree: str) -> list[str]:
    """Every check skipped in ``tree`` that does not fail on the same object in ``tree``-stripped."""
    failing = {(r["resource"], r["check_id"]) for r in results(report, f"{tree}-stripped", "failed_checks")}
    return sorted(
        f"{r['file_path']}: {r['resource']}: {r['check_id']} is skipped but passes without the skip"
        for r in results(report, tree, "skipped_checks")
        if (r["resource"], r["check_id"]) not in failing
    )


def unexplained(report: dict[str, Any], tree: str) -> list[str]:
    """Every check that fails in ``tree``."""
    return sorted(
        f"{r['file_path']}: {r['resource']}: {r['check_id']} {r['check_name']}"
        for r in results(report, tree, "failed_checks")
    )


class Scan(NamedTuple):
    root: Path
    report: dict[str, Any]


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Scan:
    if not CHECKOV.exists():
        pytest.skip(f"Checkov is not installed ({CHECKOV.relative_to(ROOT)}): run `make checkov-venv`")
    base = tmp_path_factory.mktemp("checkov")
    root = base / "scan"
    shutil.copytree(DIST, root / "dist", ignore=shutil.ignore_patterns("*.md"))
    strip(DIST, root / "dist-stripped")
    write_optional(root / "optional")
    strip(root / "optional", root / "optional-stripped")
    tamper(root / "bad")
    strip(root / "bad", root / "bad-stripped")
    env = {
        **os.environ,
        "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",
        "BC_SKIP_MAPPING": "TRUE",
        "CKV_CACHE_DIR": str(base / "cache"),
        "HOME": str(base),
    }
    command = [str(CHECKOV), "-d", str(root), "--framework", "kubernetes", "-o", "json", "--compact"]
    proc = subprocess.run(
        [*command, "--skip-download"], capture_output=True, text=True, env=env, cwd=base, timeout=600, check=False
    )
    # Exit 1 = some check failed (the tampered and stripped trees fail on purpose); anything else is an error.
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert isinstance(report, dict), "one framework, one report"
    return Scan(root, report)


def test_checkov_is_the_pinned_version(scan: Scan) -> None:
    assert scan.report["summary"]["checkov_version"] == VERSION
    lock = (ROOT / "requirements-checkov.lock").read_text(encoding="utf-8")
    assert f"checkov=={VERSION}\n" in lock


def test_every_object_of_dist_is_scanned(scan: Scan) -> None:
    assert scan.report["summary"]["parsing_errors"] == 0
    scanned = {
        r["resource"]
        for kind in ("passed_checks", "failed_checks", "skipped_checks")
        for r in results(scan.report, "dist", kind)
    }
    workloads = {
        resource_id(o)
        for _, o in documents(DIST)
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod")
    }
    assert len(workloads) >= 30
    assert workloads <= scanned, sorted(workloads - scanned)


def test_dist_has_no_failed_check(scan: Scan) -> None:
    assert unexplained(scan.report, "dist") == []


def test_every_skip_in_dist_has_a_reason(scan: Scan) -> None:
    assert skip_problems(DIST) == []
    skipped = results(scan.report, "dist", "skipped_checks")
    assert skipped, "dist/ skips what does not apply (docs/hardening.md)"
    assert all(len(r["check_result"]["suppress_comment"]) >= MIN_REASON for r in skipped), "Checkov read every reason"


def test_no_skip_in_dist_is_stale(scan: Scan) -> None:
    """Every skipped check fails on the same object without its annotation: skips do not accumulate."""
    assert stale_skips(scan.report, "dist") == []


def test_every_failure_without_skips_is_skipped_on_that_object_only(scan: Scan) -> None:
    """What the skips hide is exactly what fails without them, object by object (never by check id)."""
    failing = {(r["resource"], r["check_id"]) for r in results(scan.report, "dist-stripped", "failed_checks")}
    skipped = {(r["resource"], r["check_id"]) for r in results(scan.report, "dist", "skipped_checks")}
    assert failing == skipped
    assert not list((ROOT).glob(".checkov.y*ml")), "no config file with a blanket skip-check"


def test_the_optional_parts_pass_too_with_reasoned_needed_skips(scan: Scan) -> None:
    objects = {o["kind"] for _, o in documents(scan.root / "optional")}
    assert {"Deployment", "TCPRoute"} <= objects and "client-demo-nodered" in {
        o["metadata"]["name"] for _, o in documents(scan.root / "optional")
    }
    assert unexplained(scan.report, "optional") == []
    assert skip_problems(scan.root / "optional") == []
    assert stale_skips(scan.report, "optional") == []
    redis = results(scan.report, "optional", "skipped_checks")
    assert not [r for r in redis if r["resource"].endswith("client-demo-redis") and r["check_id"] == "CKV_K8S_35"]


def test_a_skip_without_a_reason_fails_the_suite(scan: Scan) -> None:
    problems = skip_problems(scan.root / "bad")
    assert len(problems) == 1 and REASONLESS[0] in problems[0] and "is not CKV_K8S_<id>=<reason>" in problems[0]
    (comment,) = [
        r["check_result"]["suppress_comment"]
        for r in results(scan.report, "bad", "skipped_checks")
        if r["check_id"] == REASONLESS[1] and REASONLESS[0] in r["file_path"]
    ]
    assert comment == "No comment provided"


def test_a_stale_skip_fails_the_suite(scan: Scan) -> None:
    stale = stale_skips(scan.report, "bad")
    assert len(stale) == 1 and STALE[0] in stale[0] and STALE[1] in stale[0], stale
