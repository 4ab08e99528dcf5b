"""Build the optional compiled codec; fall back to pure Python when that is impossible.

``FAKTORY_NO_EXTENSIONS=1`` skips the extension.  A missing compiler or a failed
compile warns and installs the pure-Python package instead of failing.
"""
import os
import warnings

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler, no Cython, ...
            warnings.warn(f"faktory: compiled codec not built ({exc}); using pure Python")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            warnings.warn(f"faktory: compiled codec not built ({exc}); using pure Python")


ext_modules = []
if not os.environ.get("FAKTORY_NO_EXTENSIONS"):
    try:
        from Cython.Build import cythonize
    except ImportError:
        warnings.warn("faktory: Cython not available; using pure Python")
    else:
        ext_modules = cythonize(
            [Extension("faktory._resp", ["faktory/_resp.pyx"])],
            compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
        )

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
