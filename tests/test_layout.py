"""The `constructs/` folder merges into the `constructs` library (pkgutil.extend_path).

If someone adds `constructs/__init__.py`, our folder shadows the library and cdk8s breaks in odd
ways; if a module of ours is named after something the library has, one of the two becomes
unreachable. These tests fail with a message that says which.
"""

from __future__ import annotations

import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = ROOT / "constructs"


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
