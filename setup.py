"""Build the C extension cfutures._cfutures from src/*.c.

Environment switches (used by the Makefile):
  CFUTURES_STRICT=1    -Wall -Wextra -Werror -Wmissing-prototypes
                       -Wstrict-prototypes (tests and CI build this way)
  CFUTURES_SANITIZE=1  AddressSanitizer + UndefinedBehaviorSanitizer, -O1 -g
  CFUTURES_DEBUG=1     -O0 -g, assertions on
  CFUTURES_NO_EXTENSION=1
                       no extension: for scripts/venv.sh's editable install
                       alone, as scripts/build.py builds the extension in
                       place right after it (with the flags above); else each
                       new environment would compile it twice
"""
import glob
import os

from setuptools import Extension, setup


def flag(name):
    return os.environ.get(name, "") not in ("", "0")


compile_args = ["-std=c11"]
link_args = []
undef_macros = []
if flag("CFUTURES_STRICT"):
    compile_args += ["-Wall", "-Wextra", "-Werror", "-Wmissing-prototypes",
                     "-Wstrict-prototypes"]
if flag("CFUTURES_SANITIZE"):
    sanitize = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
    compile_args += sanitize + ["-O1", "-g"]
    link_args += sanitize
    undef_macros.append("NDEBUG")
if flag("CFUTURES_DEBUG"):
    compile_args += ["-O0", "-g"]
    undef_macros.append("NDEBUG")

setup(
    ext_modules=[] if flag("CFUTURES_NO_EXTENSION") else [
        Extension(
            "cfutures._cfutures",
            sources=sorted(glob.glob("src/*.c")),
            depends=sorted(glob.glob("src/*.h")),
            extra_compile_args=compile_args,
            extra_link_args=link_args,
            undef_macros=undef_macros,
        )
    ],
)
