"""Build the Cython core, hammer._core. Everything else is in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "hammer._core",
        ["src/hammer/_core.pyx"],
        include_dirs=["src/hammer/includes"],
        libraries=["ssl", "crypto"],
        extra_compile_args=["-O2", "-Wno-unused-function"],
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )
)
