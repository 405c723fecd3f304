"""Subcommands of scripts/rpc.py, one module per component.

To add a component, drop a module NAME.py in this package that defines
register(subparsers) and adds its subcommands with rpc.cmd.add(); it is picked
up automatically. A subcommand's handler takes (client, args) and returns what
to print: None or True prints nothing, a string prints bare, anything else is
printed as JSON with indent 2.
"""

import importlib
import pkgutil

# Helper modules, not components.
_NOT_COMPONENTS = {"client", "cmd"}


def load_commands(subparsers):
    """Let every component module in this package add its subcommands."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in _NOT_COMPONENTS:
            continue
        module = importlib.import_module(__name__ + "." + info.name)
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
