"""lmcourse: the companion package of the course "Language models, from n-grams to ZeRO".

Each public object's docstring names the chapter that teaches it. Chapters import
from here and display the source (``lmcourse.show``) rather than copying it.
"""
from lmcourse._compat import unregister_future_typing_codec
from lmcourse.config import Profile, setup, show

unregister_future_typing_codec()

__version__ = "0.1.0"
__all__ = ["Profile", "setup", "show", "__version__"]
