"""The data sets, one reader module each; importing this package registers them all.

Adding a data set is one new module here that calls `prunebench.data.registry.register_dataset`: every module
of this package is imported, in name order, when the registry is first used.
"""

import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
