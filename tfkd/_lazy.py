"""Loads `tfkd`'s public names on first use.

The names and where they come from are read from the `if TYPE_CHECKING:` import block of
`tfkd/__init__.py`, so one list serves type checkers and the running package (as SPEC 1's
`lazy_loader` reads a stub). `import tfkd` then costs no TensorFlow import: the command line
answers `--help` at once, and `tfkd.keras` or `tfkd.Distiller` import what they need when first
used.
"""

import ast
import functools
import importlib
import importlib.util
from types import ModuleType
from typing import Any


@functools.lru_cache(maxsize=None)
def public_names(init_file: str) -> dict[str, tuple[str, str]]:
    """`{public name: (module, attribute)}` from the `if TYPE_CHECKING:` block of `init_file`."""
    with open(init_file, encoding="utf-8") as file:
        tree = ast.parse(file.read(), init_file)
    names = {}
    for node in tree.body:
        if not (isinstance(node, ast.If) and isinstance(node.test, ast.Name)
                and node.test.id == "TYPE_CHECKING"):
            continue
        for statement in node.body:
            if isinstance(statement, ast.ImportFrom) and statement.module:
                for alias in statement.names:
                    names[alias.asname or alias.name] = (statement.module, alias.name)
    return names


class LazyPackage(ModuleType):
    """The class of the `tfkd` module: a public name that is also a submodule's name (the function
    `tfkd.profile` of the module `tfkd.profile`) stays the public object when Python imports the
    submodule and attaches it to the package."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, ModuleType) and "__file__" in self.__dict__:
            module_name, attribute = public_names(self.__file__).get(name, ("", ""))
            if module_name == value.__name__ and hasattr(value, attribute):
                value = getattr(value, attribute)
        super().__setattr__(name, value)


def load_public_name(package: str, init_file: str, name: str, namespace: dict) -> Any:
    """Imports the public `name` of `package` (or its submodule `name`), caches it in
    `namespace` (the package's globals) and returns it.

    Raises:
        AttributeError: If `package` has no such name.
    """
    module_name, attribute = public_names(init_file).get(name, (package, name))
    if module_name == package:  # `from tfkd import data as data`, or a submodule such as `optimize`
        if name.startswith("__") or importlib.util.find_spec(f"{package}.{attribute}") is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value: ModuleType | Any = importlib.import_module(f"{package}.{attribute}")
    else:
        value = getattr(importlib.import_module(module_name), attribute)
    namespace[name] = value
    return value
