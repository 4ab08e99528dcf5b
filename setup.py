"""Build the optional compiled codec; fall back to pure Python when that is impossible.

``FAKTORY_NO_EXTENSIONS=1`` skips the extension.  No Cython, no C compiler, or a failed
compile warns and installs the pure-Python package instead of failing.
"""
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def warn(message):
    # stderr, not warnings.warn: pip shows a build backend's stderr with -v, and the
    # message must not be filtered away.
    print(f"WARNING: faktory: {message}; installing the pure-Python codec", file=sys.stderr)


class OptionalBuildExt(build_ext):
    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler at all, ...
            warn(f"compiled codec not built ({exc})")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # the compiler failed
            warn(f"compiled codec not built ({exc})")


ext_modules = []
if os.environ.get("FAKTORY_NO_EXTENSIONS", "").strip().lower() not in ("", "0", "false", "no"):
    warn("FAKTORY_NO_EXTENSIONS is set")
else:
    try:
        from Cython.Build import cythonize

        ext_modules = cythonize(
            [Extension("faktory._resp", ["faktory/_resp.pyx"]),
             Extension("faktory.server._jscan", ["faktory/server/_jscan.pyx"]),
             Extension("faktory.server._record", ["faktory/server/_record.pyx"])],
            compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
        )
    except Exception as exc:  # no Cython, or it could not translate the module
        warn(f"Cython unavailable or failed ({exc})")

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
