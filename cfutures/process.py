"""cfutures.process — the names of concurrent.futures.process.

The native ProcessPoolExecutor is not here yet; BrokenProcessPool is the
stdlib's own class.
"""
from concurrent.futures.process import BrokenProcessPool  # noqa: F401
