"""Sphinx extension for the book build (listed in ``_config.yml``): environment repairs."""
from lmcourse._compat import unregister_future_typing_codec


def setup(app):
    unregister_future_typing_codec()
    return {"parallel_read_safe": True, "parallel_write_safe": True}
