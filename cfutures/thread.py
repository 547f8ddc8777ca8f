"""cfutures.thread — the names of concurrent.futures.thread.

The native ThreadPoolExecutor is not here yet; BrokenThreadPool is the
stdlib's own class.
"""
from concurrent.futures.thread import BrokenThreadPool  # noqa: F401
