"""Property-based: generated environment files thrown at `validate` and `synth`.

Whatever the input (wrong types, unknown keys, extreme numbers, odd names, a key given twice, YAML
anchors and aliases), the outcome is either a clean one-line error with exit code 2 and an untouched
dist/, or exit 0 with a complete, parseable dist/ for the environment. Never a traceback, never a
partial dist/.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import app
import cli
from synth import output
from tiers.models import Environment
from tiers.reference import _rows

LEAF_KEYS = [k for k, _, _ in _rows(Environment, "") if k not in ("release", "namespace", "tier")]

values = st.one_of(
    st.integers(min_value=-(10**15), max_value=10**15),
    st.integers(min_value=0, max_value=100),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
    st.sampled_from(["", "*", "latest", "1Gi", "250m", "-1", "Deployment", "StatefulSet", "true", "ü", "a" * 70]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
names = st.one_of(
    st.sampled_from(["client-x", "a", "x" * 40, "x" * 41, "Upper", "-bad", "bad-", "cluster", "argocd", "ok-1"]),
    st.from_regex(r"[a-z0-9-]{1,45}", fullmatch=True),
)


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = node[part] = {}
        node = nxt
    node[parts[-1]] = value


@st.composite
def environment_files(draw: st.DrawFn) -> tuple[str, str]:
    release = draw(names)
    data: dict[str, Any] = {
        "release": release,
        "namespace": draw(st.one_of(st.just(release), names)),
        "tier": draw(st.sampled_from(["demo", "starter", "standard", "enterprise", "gold", 3])),
    }
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        key = draw(st.one_of(st.sampled_from(LEAF_KEYS), st.sampled_from(["bogus", "api.bogus", "redis.cluster.x"])))
        _set(data, key, draw(values))
    if draw(st.booleans()):
        data.pop(draw(st.sampled_from(["release", "namespace", "tier"])), None)
    file_name = release if isinstance(release, str) and draw(st.integers(0, 9)) else "other"
    text = yaml.safe_dump(data)
    trick = draw(st.sampled_from(["none", "none", "none", "duplicate", "nested-duplicate", "alias"]))
    if trick == "duplicate":  # a second top-level key: YAML alone would keep the last one silently
        key = draw(st.sampled_from(["tier", "release", "namespace", "edge", "api"]))
        text += f"{key}: {yaml.safe_dump(draw(values), default_flow_style=True).strip().removesuffix('...').strip()}\n"
    elif trick == "nested-duplicate":
        text += "edge:\n  hosts: {api: a.example.com}\n  hosts: {}\n"
    elif trick == "alias":
        text += "x-anchor: &a [1, 2]\naffinity: *a\n"
    return f"{file_name}.yaml", text


def _refusal(text: str) -> str | None:
    """The error a text must get for its YAML alone: an anchor/alias, or a key given twice."""
    if re.search(r": &\w", text):
        return "is not allowed in environment files"
    top = re.findall(r"^([A-Za-z][\w-]*):", text, flags=re.M)
    if len(top) != len(set(top)) or "\n  hosts: {}\n" in text:
        return "duplicate key (first at line"
    return None


def _run(main, argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def _snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(environment_files())
@example(("client-x.yaml", "release: client-x\nnamespace: client-x\ntier: standard\n"))
@example(("client-y.yaml", "release: client-y\nnamespace: client-y\ntier: demo\napi: {replicas: 1000000000}\n"))
@example(("client-z.yaml", "release: client-z\nnamespace: client-z\ntier: enterprise\nbogus: 1\n"))
@example(("client-d.yaml", "release: client-d\nnamespace: client-d\ntier: demo\ntier: enterprise\n"))
@example(("client-a.yaml", "release: client-a\nnamespace: client-a\ntier: demo\napi: &x {replicas: 2}\nx: *x\n"))
def test_bad_input_gives_one_line_per_error_or_a_valid_dist(case: tuple[str, str]) -> None:
    file_name, text = case
    with tempfile.TemporaryDirectory() as tmp:
        envs, out = Path(tmp) / "environments", Path(tmp) / "dist"
        envs.mkdir()
        (envs / file_name).write_text(text)
        # A previous synth's output: the marker and a generated release folder.
        (out / "previous").mkdir(parents=True)
        (out / output.MARKER).write_text(output.MARKER_TEXT)
        (out / "previous" / "Deployment.previous-api.k8s.yaml").write_text("kind: Deployment\n")
        before = _snapshot(out)

        rc, vout, verr = _run(cli.main, ["--environments", str(envs), "validate"])
        assert rc in (0, 2), (rc, verr)
        rc, sout, serr = _run(app.main, ["--environments", str(envs), "--outdir", str(out)])
        assert rc in (0, 2)
        assert "Traceback" not in serr + verr
        refusal = _refusal(text)
        if refusal is not None:
            assert rc == 2 and refusal in serr and refusal in verr, (serr, verr)
        if rc == 2:
            lines = serr.strip().splitlines()  # every error of the run, one line each, naming the file
            assert lines and all(line.startswith(f"error: {envs}/") for line in lines), serr
            assert len(lines) == len(set(lines)), serr
            assert _snapshot(out) == before, "a failed synth must leave dist/ untouched"
            assert verr.strip() == serr.strip() or verr.strip().startswith("error: "), verr
        else:
            release = yaml.safe_load(text)["release"]
            files = sorted((out / release).glob("*.yaml"))
            assert len(files) >= 14, "a complete environment"
            for f in files:
                doc = yaml.safe_load(f.read_text())
                assert doc["metadata"]["name"] and doc["kind"]
            assert not (out / "previous").exists(), "a full synth replaces dist/ as a whole"
        leftovers = [p.name for p in Path(tmp).iterdir() if p.name not in ("environments", "dist")]
        assert not leftovers, leftovers
        shutil.rmtree(out, ignore_errors=True)
