"""The package version: the one place it is written.

scikit-build-core reads it from here for the distribution metadata
(``[tool.scikit-build.metadata.version]`` in pyproject.toml), so
``arbiter_core.__version__``, ``importlib.metadata.version("arbiter-runtime")``
and ``arbiter-core --version`` always agree.
"""

__version__ = "0.1.0"
