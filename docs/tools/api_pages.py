"""MkDocs hook: one API page per public name of ``arbiter_core``.

The pages are generated at build time from ``arbiter_core.__all__`` (of the
installed package), so a new public class gets its page without anyone
remembering to write one; they are grouped by the module that defines them.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

# (section title, defining modules), in nav order; the first match wins
GROUPS = [
    ("Compiled core", ("arbiter_core._ringbuf", "arbiter_core._select", "arbiter_core._request")),
    ("Clock", ("arbiter_core.clock",)),
    ("Runtime optimization", ("arbiter_core.optimization",)),
    ("Adaptive resources", ("arbiter_core.resources",)),
    ("Types and enums", ("arbiter_core.types",)),
]


def public_names() -> dict[str, list[str]]:
    """Section title -> public names defined there (``__version__`` excluded)."""
    import arbiter_core

    sections: dict[str, list[str]] = {title: [] for title, _ in GROUPS}
    for name in sorted(arbiter_core.__all__):
        if name.startswith("__"):
            continue
        module = _defining_module(name)
        for title, prefixes in GROUPS:
            if module.startswith(prefixes):
                sections[title].append(name)
                break
        else:
            raise RuntimeError(f"arbiter_core.{name} (from {module!r}) fits no API section: "
                               "add its module to GROUPS in docs/tools/api_pages.py")
    return sections


def _defining_module(name: str) -> str:
    import arbiter_core

    # a namedtuple made in Cython reports an importlib module: ask the compiled
    # modules' own __all__ first
    for modname in ("arbiter_core._ringbuf", "arbiter_core._select"):
        if name in importlib.import_module(modname).__all__:
            return modname
    return str(getattr(getattr(arbiter_core, name), "__module__", ""))


def _page(name: str) -> str:
    import arbiter_core

    kind = "class" if inspect.isclass(getattr(arbiter_core, name)) else "function"
    return (f"# {name}\n\n`arbiter_core.{name}`, a {kind} defined in "
            f"`{_defining_module(name)}`.\n\n::: arbiter_core.{name}\n")


def on_config(config: MkDocsConfig, **kwargs: Any) -> MkDocsConfig:
    for entry in config.nav or []:
        if isinstance(entry, dict) and "API reference" in entry:
            section = entry["API reference"]
            for title, names in public_names().items():
                section.append({title: [{n: f"api/{n}.md"} for n in names]})
            break
    else:
        raise RuntimeError("mkdocs.yml has no 'API reference' nav section")
    return config


def on_files(files: Files, config: MkDocsConfig, **kwargs: Any) -> Files:
    for names in public_names().values():
        for name in names:
            files.append(File.generated(config, f"api/{name}.md", content=_page(name)))
    return files
