"""pyproject.toml lists every subpackage (the kernels/ mapping rules out automatic discovery)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "npc_runtime").rglob("__init__.py")}
    assert found - listed == set(), f"add to pyproject.toml packages: {sorted(found - listed)}"
    assert "npc_runtime.kernels" in listed


def test_kernels_import_is_ours_not_the_pypi_package():
    import npc_runtime.kernels as k
    assert Path(k.__file__).resolve().parent == ROOT / "kernels"
