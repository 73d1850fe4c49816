"""mu_core: the single-seed companion's thin package (data, models, training, methods,
metrics, statistics, the grid engine and plots)."""
from .errors import ConfigError

__version__ = "0.1.0"
__all__ = ["ConfigError"]
