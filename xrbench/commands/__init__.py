"""Sub-commands of ``xrbench``: one module each, with ``register(subparsers)`` and ``run(args)``.

Importing this package finds every module, so a new command is a new file, nothing else.
"""
import importlib
import pkgutil

MODULES = [importlib.import_module(f"{__name__}.{m.name}")
           for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name) if not m.name.startswith("_")]
