"""The `constructs/` folder merges into the `constructs` library (pkgutil.extend_path).

If someone adds `constructs/__init__.py`, our folder shadows the library and cdk8s breaks in odd
ways; if a module of ours is named after something the library has, one of the two becomes
unreachable. These tests fail with a message that says which.

The folder is laid out by the README's concerns: `core/`, `edge/`, `lifecycle/`, `isolation/`
(namespace packages: no `__init__.py` there either), beside a few shared building blocks and the
in-cluster `scripts/`. A new module goes into the folder of its concern. The synth engine that
renders them is the top-level package `synth/` (with an `__init__.py`: it merges into nothing).
"""

from __future__ import annotations

import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = ROOT / "constructs"
CONCERNS = ("core", "edge", "lifecycle", "isolation")
#: Modules beside the concern folders: helpers every concern uses, and the charts that wire them.
#: ``api_objects`` is how every construct declares a manifest; rendering it is the synth engine's
#: (synth/: the Python renderer, the jsii wire encoding, the YAML writer), not a construct.
#: ``scan_skips`` annotates every workload, whichever concern makes it (core and lifecycle have workloads).
SHARED = {
    "platform",
    "scan_skips",
    "secret_catalog",
    "release_chart",
    "shared_charts",
    "argocd_apps",
    "api_objects",
}
#: The synth engine: a normal package at the top level, one module per stage (synth/__init__.py).
ENGINE = ROOT / "synth"
ENGINE_MODULES = {
    "__init__",
    "kernel",
    "fleet",
    "plan",
    "cache",
    "render",
    "workers",
    "python_renderer",
    "jsii_wire",
    "manifest_writer",
    "files",
    "pipeline",
    "output",
    "signals",
    "run",
}
#: Files run in the cluster (shipped in ConfigMaps), not imported by the app.
SCRIPTS = "scripts"


def test_constructs_folder_has_no_init() -> None:
    assert not (OURS / "__init__.py").exists(), (
        "constructs/__init__.py must not exist: it would shadow the `constructs` library that cdk8s "
        "depends on. Our folder merges into the library through pkgutil.extend_path."
    )


def test_library_and_our_modules_both_import() -> None:
    import constructs

    assert hasattr(constructs, "Construct"), "`from constructs import Construct` must be the library's"
    assert "site-packages" in str(Path(constructs.__file__)), (
        f"`constructs` resolves to {constructs.__file__}, not the library: is there a constructs/__init__.py?"
    )
    assert str(OURS) in [str(Path(p)) for p in constructs.__path__], (
        "the repo's constructs/ folder is not on the library's __path__; run from the repo root"
    )
    mod = importlib.import_module("constructs.core.api_service")
    assert mod.ApiService.__module__ == "constructs.core.api_service"


def test_no_module_named_after_the_library() -> None:
    import constructs

    library_names = {n.lower() for n in constructs.__all__} | {"_jsii"}
    ours = {p.stem for p in OURS.glob("*.py")} | {p.name for p in OURS.iterdir() if p.is_dir()}
    clashes = sorted(n for n in ours if n.lower() in library_names)
    assert not clashes, f"these modules in constructs/ shadow names of the constructs library: {clashes}"


def test_no_init_in_any_subfolder() -> None:
    inits = sorted(str(p.relative_to(ROOT)) for p in OURS.rglob("__init__.py"))
    assert not inits, (
        f"{inits}: constructs/ and its folders are namespace packages merged into the `constructs` library; "
        "an __init__.py shadows the library (top level) or breaks the merge. Remove it."
    )


def test_every_module_lives_in_a_concern_folder_or_is_shared() -> None:
    folders = sorted(p.name for p in OURS.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert folders == sorted((*CONCERNS, SCRIPTS)), (
        f"constructs/ has folders {folders}; expected the concerns {list(CONCERNS)} and {SCRIPTS}/"
    )
    flat = sorted(p.stem for p in OURS.glob("*.py"))
    stray = [m for m in flat if m not in SHARED]
    assert not stray, (
        f"constructs/{{{', '.join(stray)}}}.py: put each in the folder of its concern ({', '.join(CONCERNS)}), "
        "or list it in SHARED here if every concern uses it"
    )
    missing = sorted(SHARED - set(flat))
    assert not missing, f"SHARED names modules that do not exist: {missing}"
    for concern in CONCERNS:
        assert list((OURS / concern).glob("*.py")), f"constructs/{concern}/ has no module"
        nested = sorted(str(p.relative_to(ROOT)) for p in (OURS / concern).iterdir() if p.is_dir())
        nested = [n for n in nested if not n.endswith("__pycache__")]
        assert not nested, f"{nested}: one level of concern folders only"


def test_every_module_of_the_concern_folders_imports() -> None:
    for path in sorted(OURS.glob("*/*.py")):
        if path.parent.name == SCRIPTS:
            continue
        name = f"constructs.{path.parent.name}.{path.stem}"
        mod = importlib.import_module(name)
        assert Path(mod.__file__ or "").resolve() == path.resolve(), f"{name} resolves to {mod.__file__}"


def test_the_engine_is_a_package_of_its_own_with_a_docstring_per_stage() -> None:
    """synth/ is a normal package (it has an __init__.py, unlike constructs/), not named after the
    constructs library or cdk8s, and every module says what it takes and what it gives."""
    import ast

    import cdk8s

    import constructs

    assert (ENGINE / "__init__.py").is_file(), "synth/ is a normal package: it needs its __init__.py"
    modules = {p.stem for p in ENGINE.glob("*.py")}
    assert modules == ENGINE_MODULES, f"synth/ holds {sorted(modules)}; list each module in ENGINE_MODULES"
    taken = {n.lower() for n in (*constructs.__all__, *dir(cdk8s))}
    assert ENGINE.name not in taken, f"the engine package shadows a name of constructs or cdk8s: {ENGINE.name}"
    for path in sorted(ENGINE.glob("*.py")):
        assert ast.get_docstring(ast.parse(path.read_text())), f"synth/{path.name} has no module docstring"
    assert not (OURS / "manifest_writer.py").exists() and not (OURS / "jsii_wire.py").exists(), (
        "the renderer's internals live in synth/, constructs/ holds constructs and their building blocks"
    )


def test_the_models_package_re_exports_every_public_name() -> None:
    """``from tiers.models import X`` is the import everywhere: the package lists each submodule's names."""
    import ast

    import tiers.models

    for path in sorted((ROOT / "tiers" / "models").glob("*.py")):
        if path.stem == "__init__":
            continue
        defined: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef | ast.FunctionDef):
                defined.add(node.name)
            elif isinstance(node, ast.Assign):
                defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                defined.add(node.target.id)
        module = importlib.import_module(f"tiers.models.{path.stem}")
        missing = sorted(
            n
            for n in defined
            if not n.startswith("_")
            and (n not in tiers.models.__all__ or getattr(tiers.models, n) is not getattr(module, n))
        )
        assert not missing, f"tiers/models/{path.name} defines {missing}: re-export them in tiers/models/__init__.py"
