"""The errors hammer raises to its callers. Imports nothing from hammer."""


class ConfigError(ValueError):
    """A bad option or argument: reported as one line, exit code 2, nothing sent."""


class HammerSetupError(RuntimeError):
    """A hammer's setup() failed: the run is refused before anything is scheduled."""
