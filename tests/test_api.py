"""The top-level API: every exported name resolves, and no submodule shadows a function."""

import importlib
import pkgutil

import vaekit


def test_every_export_resolves_to_its_object_even_after_all_submodules_load():
    for info in pkgutil.walk_packages(vaekit.__path__, "vaekit."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    for name in vaekit.__all__:
        value = getattr(vaekit, name)
        assert not isinstance(value, type(vaekit)), f"vaekit.{name} is a module, not the exported object"
