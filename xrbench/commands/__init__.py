"""Sub-commands of ``xrbench``: one module each, with ``register(subparsers)`` and ``run(args)``.

Importing this package finds every module, so a new command is a new file, nothing else; a
module without ``register`` (``preflight``) is a helper, not a command. Command modules import
only the standard library at the top, so ``xrbench --help`` loads neither torch nor numpy.
"""
import importlib
import pkgutil

MODULES = [mod for mod in (importlib.import_module(f"{__name__}.{m.name}")
                           for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
                           if not m.name.startswith("_"))
           if hasattr(mod, "register")]
