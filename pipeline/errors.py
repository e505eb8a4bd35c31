"""Exceptions of the OpenSINS API. The CLI maps them to exit codes (DESIGN.md §4)."""

from __future__ import annotations


class OpenSINSError(Exception):
    """Base class of every error the API raises on purpose."""

    exit_code = 1


class InputError(OpenSINSError):
    """Bad input or usage: unreadable file, not a CT, implausible geometry (exit code 2)."""

    exit_code = 2


class ConfigError(InputError):
    """A configuration file that is missing, malformed or has unknown keys (exit code 2)."""


class NotImplementedYet(InputError):
    """A command whose implementation has not landed yet (exit code 2, said plainly)."""


class CaseError(OpenSINSError):
    """A valid input that could not be processed, e.g. no spine found (exit code 3)."""

    exit_code = 3


class ModelError(InputError):
    """The segmentation model is missing, corrupt (hash mismatch) or unusable on the device (exit code 2)."""
