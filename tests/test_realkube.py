"""tests/realkube.py itself: the real API server fixture, its mode line and its skips."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests import realkube


def test_mode_line_names_the_component() -> None:
    line = realkube.mode()
    assert line.startswith("kube-apiserver 1.28.4: ")
    reason = realkube.skip_reason()
    assert line == ("kube-apiserver 1.28.4: real" if reason is None else f"kube-apiserver 1.28.4: skipped: {reason}")


def test_missing_or_damaged_vendor_file_is_a_skip_naming_it(tmp_path: Path) -> None:
    """A fresh clone elsewhere (no ../shared/vendor), a truncated download, a missing checksum list: one line
    naming the file, never a traceback (the server is never started from an unchecked file)."""
    assert realkube.vendor_problem(tmp_path) == f"{tmp_path / realkube.BINARY} missing"
    payload = b"\xfd7zXZ\x00 not really xz"
    (tmp_path / realkube.BINARY).write_bytes(payload)
    assert realkube.vendor_problem(tmp_path) == f"{tmp_path / 'SHA256SUMS'} missing"
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  other-file\n")
    assert realkube.vendor_problem(tmp_path) == f"{tmp_path / 'SHA256SUMS'} has no line for {realkube.BINARY}"
    (tmp_path / "SHA256SUMS").write_text(f"{realkube.sha256(tmp_path / realkube.BINARY)}  {realkube.BINARY}\n")
    assert realkube.vendor_problem(tmp_path) is None
    (tmp_path / realkube.BINARY).write_bytes(payload[:-3])  # truncated
    assert realkube.vendor_problem(tmp_path) == (
        f"{tmp_path / realkube.BINARY} damaged (sha256 differs from SHA256SUMS)"
    )


def test_server_answers_as_admin_and_as_a_service_account(kube_api: realkube.KubeApiServer) -> None:
    assert kube_api.request("GET", "/version")[1]["gitVersion"] == "v1.28.4"
    kube_api.refresh_discovery()
    assert ("admissionregistration.k8s.io/v1beta1", "ValidatingAdmissionPolicy") in kube_api._discovery
    assert ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy") not in kube_api._discovery, "1.28"
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "realkube-smoke"}}
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "probe", "namespace": "realkube-smoke"}}
    kube_api.apply(ns)
    kube_api.apply(sa)
    try:
        token = kube_api.token("realkube-smoke", "probe")
        user = "system:serviceaccount:realkube-smoke:probe"
        path = "/api/v1/namespaces/realkube-smoke/secrets"
        for status, body in (
            kube_api.request("GET", path, check=False, token=token),
            kube_api.request("GET", path, check=False, as_user=user),
        ):
            assert status == 403 and f'User "{user}" cannot list resource "secrets"' in body["message"]
        if shutil.which("kubectl"):  # the helper other tests use: impersonation and stdin
            out = kube_api.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", as_user=user).stdout
            assert out == user
            cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe, namespace: realkube-smoke}\ndata: {a: b}\n"
            kube_api.kubectl("apply", "--server-side", "-f", "-", input=cm)
            assert (
                kube_api.kubectl("get", "configmap", "probe", "-n", "realkube-smoke", "-o", "jsonpath={.data.a}").stdout
                == "b"
            )
            denied = kube_api.kubectl("get", "configmap", "probe", "-n", "realkube-smoke", as_user=user, check=False)
            assert denied.returncode != 0 and "forbidden" in denied.stderr
    finally:
        kube_api.delete(ns)
