class ConfigError(ValueError):
    """Bad input: the message names the parameter and what is allowed."""
