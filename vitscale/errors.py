"""Errors a user can fix. The CLI prints them as one line and exits non-zero.

Every message names the problem and the fix, so that a bad config, a missing data folder or a
wrong launch environment never shows a traceback and never leaves a half-written run behind.
"""


class VitscaleError(Exception):
    """Base class: a problem in the user's input, reported as one line."""

    exit_code = 2


class ConfigError(VitscaleError):
    """The config file, an override or a combination of keys is invalid."""


class DataError(VitscaleError):
    """The dataset is missing, in the wrong layout or unreadable."""


class RankFailure(VitscaleError):
    """A rank of a distributed run failed, died or hung; the message names it."""

    exit_code = 1
