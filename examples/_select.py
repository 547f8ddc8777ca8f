"""Shared by the examples: pick the futures module from the command line.

    python examples/<name>.py --impl stdlib     # concurrent.futures
    python examples/<name>.py --impl cfutures   # cfutures (the default)

The rest of each example is written exactly as the lesson writes it against
`concurrent.futures`; only this switch differs.
"""
import argparse
import importlib


def futures_module(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--impl", choices=("stdlib", "cfutures"), default="cfutures")
    args = parser.parse_args()
    name = "concurrent.futures" if args.impl == "stdlib" else "cfutures"
    return importlib.import_module(name)
