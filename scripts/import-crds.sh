#!/usr/bin/env bash
# Regenerate the cdk8s Python bindings for our CRDs: one module per API group.
#
#   scripts/import-crds.sh [OUTDIR]        (default: imports, relative to the repo root)
#
# Reads the upstream CRD files from $CRDS_DIR (default: ../shared/crds next to the repo;
# provenance in that folder's README.md and in cdk8s.yaml). For each API group, the group's
# CRD files are concatenated (separated by `---`) into one multi-document file and passed to
# `cdk8s import --language python`, which then writes ONE module for the whole group.
# (Importing the files one by one would make each import overwrite the group's module.)
#
# The groups are generated in parallel, each into its own scratch directory, then merged.
# OUTDIR is replaced only when everything succeeded, so a failed run leaves it untouched.
# The output is deterministic: running twice gives identical trees (`diff -r`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUTDIR="${1:-imports}"
case "$OUTDIR" in /*) ;; *) OUTDIR="$ROOT/$OUTDIR" ;; esac
CRDS_DIR="${CRDS_DIR:-$ROOT/../shared/crds}"
CDK8S="$ROOT/node_modules/.bin/cdk8s"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"

export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="${JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION:-20}"
export CDK8S_CHECK_UPGRADE=false

die() { echo "import-crds: $*" >&2; exit 1; }

[ -d "$CRDS_DIR" ] || die "CRD source folder not found: $CRDS_DIR (expected ../shared/crds next to the repo, or set CRDS_DIR). The committed imports/ tree is usable as is; regenerating needs the CRD files."
[ -x "$CDK8S" ] || die "cdk8s CLI not found at $CDK8S; run 'make setup' (npm ci) first."
if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
"$PY" -c 'import yaml' 2>/dev/null || die "$PY lacks PyYAML (needed to write imports/README.md); run 'make setup' first."

# group | python module path (what cdk8s derives from the group) | CRD files (relative to CRDS_DIR)
GROUPS_SPEC=(
  "gateway.networking.k8s.io|imports.io.k8s.networking.gateway|gateway-api/standard-gateways.yaml gateway-api/standard-httproutes.yaml gateway-api/experimental-tlsroutes.yaml gateway-api/experimental-tcproutes.yaml"
  "gateway.envoyproxy.io|imports.io.envoyproxy.gateway|envoy-gateway/gateway.envoyproxy.io_backendtrafficpolicies.yaml envoy-gateway/gateway.envoyproxy.io_clienttrafficpolicies.yaml envoy-gateway/gateway.envoyproxy.io_securitypolicies.yaml"
  "cert-manager.io|imports.io.cert_manager|cert-manager/cert-manager.io_certificates.yaml cert-manager/cert-manager.io_issuers.yaml cert-manager/cert-manager.io_clusterissuers.yaml"
  "monitoring.coreos.com|imports.com.coreos.monitoring|prometheus-operator/monitoring.coreos.com_servicemonitors.yaml prometheus-operator/monitoring.coreos.com_podmonitors.yaml prometheus-operator/monitoring.coreos.com_prometheusrules.yaml"
  "onepassword.com|imports.com.onepassword|onepassword-operator/onepassword.com_onepassworditems.yaml"
  "argoproj.io|imports.io.argoproj|argo-cd/application-crd.yaml argo-cd/applicationset-crd.yaml argo-cd/appproject-crd.yaml"
  "postgresql.cnpg.io|imports.io.cnpg.postgresql|cloudnative-pg/postgresql.cnpg.io_clusters.yaml"
)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/import-crds.XXXXXX")"
trap '[ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"' EXIT

# 1. One multi-document CRD file per group (each in its own directory: no cdk8s.yaml there,
#    so the CLI neither reads nor rewrites the repo's config).
for spec in "${GROUPS_SPEC[@]}"; do
  IFS='|' read -r group module files <<<"$spec"
  d="$WORK/$group"
  mkdir -p "$d"
  for f in $files; do
    [ -f "$CRDS_DIR/$f" ] || die "missing CRD file: $CRDS_DIR/$f"
    # one `---` before each document (some upstream files already start with one)
    [ "$(head -n1 "$CRDS_DIR/$f")" = "---" ] || printf -- '---\n'
    cat "$CRDS_DIR/$f"
    # make sure the next separator starts on its own line
    [ -z "$(tail -c1 "$CRDS_DIR/$f")" ] || printf '\n'
  done >"$d/crds.yaml"
  printf '%s\n' "$module" >"$d/module"
done

# 2. cdk8s import, groups in parallel.
run_one() {
  local d="$1"
  cd "$d"
  if ! "$CDK8S" import --no-save --language python --output out crds.yaml >log 2>&1; then
    echo "import-crds: cdk8s import failed for $(basename "$d"):" >&2
    cat log >&2
    return 1
  fi
}
export -f run_one
export CDK8S
# Largest input first, so the slow groups do not end up last on one core.
(cd "$WORK" && for g in "${GROUPS_SPEC[@]%%|*}"; do printf '%s %s\n' "$(wc -c <"$g/crds.yaml")" "$g"; done) |
  sort -k1,1nr -k2 | cut -d' ' -f2 |
  (cd "$WORK" && xargs -P "$JOBS" -I{} bash -c 'run_one "$PWD/$1"' _ {}) ||
  die "cdk8s import failed (see above); $OUTDIR left untouched"

# 3. Merge the per-group trees; check each group produced the module we expect.
NEW="$WORK/new"
mkdir -p "$NEW"
for spec in "${GROUPS_SPEC[@]}"; do
  IFS='|' read -r group module files <<<"$spec"
  rel="${module#imports.}"
  [ -f "$WORK/$group/out/${rel//.//}/__init__.py" ] ||
    die "cdk8s import of $group did not produce ${rel//.//}/__init__.py (module naming changed?)"
  cp -R "$WORK/$group/out/." "$NEW/"
done

# 4. README (generated, so that a regeneration reproduces the whole tree).
"$PY" - "$WORK" "$NEW/README.md" "${GROUPS_SPEC[@]}" <<'PYEOF'
import re
import sys
from pathlib import Path

import yaml

work, readme, specs = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
lines = [
    "# imports/: generated cdk8s bindings for our CRDs",
    "",
    "Generated by `make imports` (scripts/import-crds.sh) from ../shared/crds (upstream",
    "sources: cdk8s.yaml and ../shared/crds/README.md). **Never edit**: regenerate instead.",
    "tests/test_imports_regen.py checks that this tree matches a fresh regeneration.",
    "",
    "One module per API group (no `__init__.py` in `imports/` or the folders above each",
    "module: they are namespace packages, importable from the repo root).",
    "Each module loads its own jsii assembly on first import; import only the groups a",
    "process needs (the gateway modules are the largest).",
    "",
    "`wire_tables.json` (scripts/wire_tables.py) records how each L1 class of these modules and of",
    "`cdk8s_plus_27.k8s` renders itself (its `toJson_*` functions, GVKs and enum values), read from",
    "the bindings' JavaScript: synth/python_renderer.py renders the same objects in Python.",
    "",
    "| module | API group | kind: classes (versions; * = storage) | CRD files |",
    "|---|---|---|---|",
]
for spec in specs:
    group, module, files = spec.split("|")
    init = work / group / "out" / Path(*module.split(".")[1:]) / "__init__.py"
    classes = set(re.findall(r"^class (\w+)\(\n\s+_cdk8s_\w+\.ApiObject,", init.read_text(), re.M))
    kinds = []
    for doc in yaml.safe_load_all((work / group / "crds.yaml").read_text()):
        if not doc:
            continue
        kind = doc["spec"]["names"]["kind"]
        versions = ", ".join(
            v["name"] + ("*" if v.get("storage") else "") + ("" if v.get("served", True) else " unserved")
            for v in doc["spec"]["versions"]
        )
        # cdk8s names the storage/first version's class after the kind, the others Kind<Version>.
        own = sorted(c for c in classes if re.fullmatch(re.escape(kind.lower()) + r"(v\d+((alpha|beta)\d+)?)?", c.lower()))
        kinds.append(f"{kind}: {', '.join(f'`{c}`' for c in own)} ({versions})")
    lines.append(
        f"| `{module}` | {group} | {'<br>'.join(kinds)} | {', '.join(f'`{f}`' for f in files.split())} |"
    )
lines += [
    "",
    "Example:",
    "",
    "```python",
    "from imports.io.k8s.networking.gateway import HttpRoute",
    "from imports.io.cert_manager import Certificate",
    "```",
    "",
]
readme.write_text("\n".join(lines))
PYEOF

# 5. How every L1 binding renders itself (core types and these modules), for synth/python_renderer.py.
"$PY" "$ROOT/scripts/wire_tables.py" "$NEW" || die "wire_tables.py failed"

# 6. Swap in the new tree.
rm -rf "$OUTDIR"
mkdir -p "$(dirname "$OUTDIR")"
mv "$NEW" "$OUTDIR"
echo "import-crds: wrote ${#GROUPS_SPEC[@]} modules to ${OUTDIR#"$ROOT"/}"
