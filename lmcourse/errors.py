"""Errors the course raises on bad input: short, and naming the problem."""


class LMCourseError(Exception):
    """Base class: an error in what the user asked for, not a bug in lmcourse."""


class ConfigError(LMCourseError, ValueError):
    """A bad profile, device or option."""


class AssetError(LMCourseError, FileNotFoundError):
    """A data asset is unknown, its package is missing, or its checksum does not match."""
