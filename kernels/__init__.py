"""Triton kernels beside their PyTorch references, importable only as ``npc_runtime.kernels``.

The folder lives at the repository top (``kernels/``) but is installed as a subpackage of
``npc_runtime`` (see ``[tool.setuptools.package-dir]`` in pyproject.toml), so ``import kernels``
is never needed and can never pick up the unrelated PyPI package of that name.
"""
