"""The command line of a child process that runs *this* process's ``faktory``.

``python -m faktory`` puts the current directory first on the child's ``sys.path``, so a
child started in a source checkout (the README's folder, say) imports the checkout's
``faktory`` instead of the one its parent imported: the package installed by ``pip install
.``, with its compiled modules, becomes the uncompiled source tree in the child (the
embedded server of ``faktory bench`` ran its pure-Python codec, at a third of the speed).
``faktory_argv`` starts the child on the very package directory the parent imported; the
current directory stays importable after it (``faktory worker`` children import the
project's modules from there).
"""
from __future__ import annotations

import os
import sys

__all__ = ["PACKAGE_DIR", "faktory_argv"]

#: The directory of the ``faktory`` package this process imported.
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

# Loads the package from the directory given as the first argument (without putting
# anything on sys.path, so that nothing else resolves differently), then runs
# ``faktory/__main__.py`` with the rest of the arguments, as ``python -m faktory`` would.
_BOOT = (
    "import importlib.util as u, os, runpy, sys\n"
    "d = sys.argv.pop(1)\n"
    "s = u.spec_from_file_location('faktory', os.path.join(d, '__init__.py'), submodule_search_locations=[d])\n"
    "m = sys.modules['faktory'] = u.module_from_spec(s)\n"
    "s.loader.exec_module(m)\n"
    "runpy.run_module('faktory', run_name='__main__', alter_sys=True)\n"
)


def faktory_argv(*args: str) -> list[str]:
    """``[python, ..., *args]``: ``faktory ARGS`` run by this interpreter on this
    process's ``faktory`` package (see the module docstring)."""
    return [sys.executable, "-c", _BOOT, PACKAGE_DIR, *args]
