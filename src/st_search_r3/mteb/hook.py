"""Registers ``search-r3`` and our tasks with MTEB right after ``mteb`` is imported; run by ``st_search_r3_mteb.pth``.

MTEB has no plugin entry points and registering from inside its own import is circular, so this finder
wraps the loader of the top-level ``mteb`` package and registers once that module has executed.
It runs at every interpreter start: keep it free of heavy imports.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import warnings


class _RegisterAfterMtebImport(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "mteb":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module) -> None:
            exec_module(module)
            try:
                # Each registers itself on import. A module already being imported (it is what imported
                # mteb) comes back half-done here and registers when it finishes.
                import st_search_r3.mteb.model  # noqa: F401
                import st_search_r3.mteb.tasks  # noqa: F401
            except Exception as error:  # a broken registration must never break `import mteb`
                warnings.warn(f"st-search-r3 could not register with MTEB: {error!r}", stacklevel=2)

        spec.loader.exec_module = exec_then_register
        return spec


sys.meta_path.insert(0, _RegisterAfterMtebImport())
