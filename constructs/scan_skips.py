"""Checkov's skip annotations on a workload (docs/hardening.md): which checks do not apply to it, and why.

Takes the check ids with one-line reasons and the workload's images; gives the ``checkov.io/skip<N>``
annotations, numbered in check-id order so the output is stable.
"""

from __future__ import annotations

from collections.abc import Sequence

from tiers.models import Image

#: Checkov's own skip annotation (``checkov.io/skip<N>: CKV_K8S_<id>=<reason>``), read from the
#: workload's metadata; container checks (image, pull policy, env) are reported on the workload.
CHECKOV_SKIP = "checkov.io/skip"
#: Container images without a digest (Checkov's CKV_K8S_43).
CKV_IMAGE_DIGEST = "CKV_K8S_43"
#: Secrets as environment variables.
CKV_SECRET_ENV = "CKV_K8S_35"
#: ServiceAccount token mounted.
CKV_SA_TOKEN = "CKV_K8S_38"
#: runAsUser below 10000.
CKV_HIGH_UID = "CKV_K8S_40"
#: readOnlyRootFilesystem not set.
CKV_READ_ONLY_ROOT = "CKV_K8S_22"

#: The pod talks to the Kubernetes API, so it needs its ServiceAccount token.
REASON_CALLS_KUBE_API = "the pod calls the Kubernetes API with its ServiceAccount token"


def checkov_skips(reasons: dict[str, str] | None = None, images: Sequence[Image] = ()) -> dict[str, str]:
    """The skip annotations of one workload: ``reasons`` (check id -> why the check does not apply
    to it), plus CKV_K8S_43 for its images that tiers/images.lock has no digest for.

    A reason is one line a reviewer can verify; Checkov splits the value at ``=``, so a reason may not
    contain one. Numbered in check-id order (``checkov.io/skip1``...), so the output is stable.
    """
    all_reasons = dict(reasons or {})
    unpinned = sorted({i.tag_ref for i in images if i.digest is None})
    if unpinned:
        all_reasons[CKV_IMAGE_DIGEST] = (
            f"no digest recorded in tiers/images.lock for {', '.join(unpinned)}: kept by tag "
            "(docs/hardening.md: record digests before a release)"
        )
    for check, reason in all_reasons.items():
        if not reason.strip() or "=" in reason or "\n" in reason:
            raise ValueError(f"{check}: a Checkov skip needs a one-line reason without '=', got {reason!r}")
    ordered = sorted(all_reasons.items(), key=lambda item: int(item[0].rsplit("_", 1)[1]))
    return {f"{CHECKOV_SKIP}{n}": f"{check}={reason}" for n, (check, reason) in enumerate(ordered, 1)}
