"""Errors for user mistakes. The CLI prints these as one line and exits non-zero;
anything else is a bug and raises normally."""


class VaekitError(Exception):
    """Base class of every error caused by input the user can fix."""


class DataError(VaekitError):
    """The data is missing, unreadable, malformed, or unfit for the chosen model."""


class ConfigError(VaekitError):
    """A hyper-parameter or option is invalid."""


class CheckpointError(VaekitError):
    """A run directory or checkpoint is missing, corrupt, or does not match."""


def optional_import(module: str, purpose: str, install: str):
    """Import an optional dependency, or raise a ConfigError naming `purpose` and the pip line `install`."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{purpose} needs {module.split('.')[0]}: pip install {install}") from None
