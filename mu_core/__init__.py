"""mu_core: the single-seed companion's thin package: the domain-neutral engine (plan, store,
tasks, study), the statistics, analyses and plots, and one subpackage per domain (``images``,
``ltr``)."""
from .errors import ConfigError

__version__ = "0.1.0"
__all__ = ["ConfigError"]
