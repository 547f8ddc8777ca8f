"""Shared by the examples: pick the futures module (and the start method).

    python examples/<name>.py --impl stdlib     # concurrent.futures
    python examples/<name>.py --impl cfutures   # cfutures (the default)
    python examples/<name>.py --impl cfutures --start-method spawn

--start-method is one of multiprocessing.get_all_start_methods() (fork,
spawn, forkserver on Linux); the default is the platform's default, the
first of that list.  It is applied with multiprocessing.set_start_method(),
so every ProcessPoolExecutor the example creates without an mp_context uses
it, under both modules.

Call futures_module() only from the script's `if __name__ == "__main__":`
block, as the lesson guards its top-level code: under spawn and forkserver
a process pool's workers import the script again (as `__mp_main__`), and
they must neither parse the command line nor call set_start_method() --
only the parent process chooses.

The rest of each example is written exactly as the lesson writes it against
`concurrent.futures`; only this switch differs.
"""
import argparse
import importlib
import multiprocessing


def futures_module(description):
    methods = multiprocessing.get_all_start_methods()
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--impl", choices=("stdlib", "cfutures"), default="cfutures")
    parser.add_argument(
        "--start-method", choices=methods, default=methods[0],
        help="multiprocessing start method for process pools"
             " (default: the platform default, %(default)s)")
    args = parser.parse_args()
    multiprocessing.set_start_method(args.start_method)
    name = "concurrent.futures" if args.impl == "stdlib" else "cfutures"
    return importlib.import_module(name)
