"""Print the requirements of pyproject.toml's `test` extra, one per line.

The extra is the single list of test dependencies; this reads it without
tomllib (absent before 3.11) because the file's layout is ours and simple.
"""
import re
import pathlib

text = pathlib.Path(__file__).resolve().parent.parent.joinpath("pyproject.toml").read_text()
match = re.search(r"^test\s*=\s*\[(.*?)\]", text, re.M | re.S)
print("\n".join(re.findall(r'"([^"]+)"', match.group(1))))
