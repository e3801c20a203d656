"""Griffe extension: document the compiled modules from their stubs *and* docstrings.

Griffe reads ``_ringbuf.pyi`` and ``_select.pyi`` (signatures, annotations) but
the docstrings live in the ``.pyx`` sources, compiled into the extension
modules.  This extension copies each compiled object's ``__doc__`` onto the
stub's object, dropping the signature lines Cython embeds (``embedsignature``)
and the ``Name(args)\\n--`` header of cdef classes.  An attribute a class sets
in ``__init__`` shows no value (it would be the initialising code) and takes
its description from the class docstring's Attributes section.  An ``@overload``-only
method of a stub (no implementation in a ``.pyi``) is given its last overload
as the documented signature.  In every docstring of the package, Sphinx roles
(``:meth:`x```) become inline code, since MkDocs does not resolve them.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

import griffe

COMPILED = ("_ringbuf", "_select")
_SIGNATURE = re.compile(r"^[\w.]+\(.*\)(\s*->\s*.+)?$")
_ROLE = re.compile(r":(?:py:)?(?:func|meth|class|attr|mod|data|exc|obj):`~?([^`]+)`")


def clean(doc: str) -> str:
    lines = inspect.cleandoc(doc).splitlines()
    while lines and (not lines[0].strip() or lines[0].strip() == "--"
                     or _SIGNATURE.match(lines[0].strip())):
        lines.pop(0)
    return "\n".join(lines)


def _objects(obj: Any) -> Any:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)


class CythonDocstrings(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader,
                   **kwargs: Any) -> None:
        if pkg.name != "arbiter_core":
            return
        parser, options = loader.docstring_parser, loader.docstring_options
        for modname in COMPILED:
            stub = pkg.members[modname]
            runtime = importlib.import_module(f"arbiter_core.{modname}")
            for obj in list(_objects(stub)):
                if isinstance(obj, griffe.Class):
                    # a cdef class is typed with __new__ in its stub; its docstring
                    # documents the constructor's parameters, which MkDocs merges
                    # from __init__ only
                    new = obj.members.get("__new__")
                    if isinstance(new, griffe.Function) and "__init__" not in obj.members:
                        params = list(new.parameters)
                        init = griffe.Function(
                            "__init__", lineno=new.lineno, endlineno=new.endlineno,
                            parameters=griffe.Parameters(
                                griffe.Parameter("self", kind=params[0].kind), *params[1:]))
                        obj.set_member("__init__", init)
                    for name, overloads in list(obj.overloads.items()):
                        if name not in obj.members and overloads:
                            func = overloads[-1]
                            func.overloads = overloads
                            obj.set_member(name, func)
            for obj in _objects(stub):
                if obj is stub or obj.docstring is not None or obj.name.startswith("__"):
                    continue
                target: Any = runtime
                try:
                    for part in obj.path.split(".")[2:]:
                        target = getattr(target, part)
                except AttributeError:
                    continue
                doc = getattr(target, "__doc__", None)
                if doc and not doc.startswith("Alias for field number") and not (
                        isinstance(target, type) and doc == type.__doc__):
                    obj.docstring = griffe.Docstring(clean(doc), parent=obj, parser=parser,
                                                     parser_options=options)
        for obj in _objects(pkg):
            if obj.docstring is not None:
                obj.docstring.value = _ROLE.sub(r"`\1`", obj.docstring.value)
        for obj in list(_objects(pkg)):
            if isinstance(obj, griffe.Attribute):
                _instance_attribute(obj, parser, options)


def _instance_attribute(attr: griffe.Attribute, parser: Any, options: Any) -> None:
    """An attribute set in its class's ``__init__`` (``self.monitor =
    ResourceMonitor(...)``): its "value" would be that code, so it has none;
    its description comes from the class docstring's Attributes section."""
    cls = attr.parent
    if "instance-attribute" not in attr.labels or not isinstance(cls, griffe.Class):
        return
    init = cls.members.get("__init__")
    if (not isinstance(init, griffe.Function) or init.endlineno is None
            or attr.lineno is None or not init.lineno <= attr.lineno <= init.endlineno):
        return
    attr.value = None
    if attr.docstring is None and cls.docstring is not None:
        for section in cls.docstring.parsed:
            if section.kind is griffe.DocstringSectionKind.attributes:
                for item in section.value:
                    if item.name == attr.name and item.description:
                        attr.docstring = griffe.Docstring(
                            item.description, parent=attr, parser=parser,
                            parser_options=options)
