"""Task functions for the process-pool half of test_unordered_map.py.

Workers started with spawn or forkserver import what they run by module
name, so the tasks live here, at module level; the sequencing with the test
goes through files, as in process_tasks (whose helpers these use).
"""

import process_tasks


def gated(directory, tag, wait):
    """`tag`, at once, or -- if `wait` -- once `<directory>/release`
    exists (announced as `<tag>.started.<pid>` meanwhile)."""
    if wait:
        return process_tasks.block(directory, tag)
    return tag


def checked(value):
    """`value`, or ValueError for a negative one."""
    if value < 0:
        raise ValueError("negative: %d" % value)
    return value
