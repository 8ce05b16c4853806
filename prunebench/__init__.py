"""prunebench: fair, reproducible benchmarks of neural-network pruning methods."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("prunebench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
