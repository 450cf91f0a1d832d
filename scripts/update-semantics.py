#!/usr/bin/env python3
"""Refreshes the Tests column of docs/semantics.md from the test names.

A test belongs to every rule id its name carries: test_F6_T6_remove_in_classify
counts for F6 (and T6, which has no row). Run from anywhere; rewrites in place.
"""
import pathlib
import re

root = pathlib.Path(__file__).resolve().parent.parent
tests = {}
for path in sorted((root / "tests").glob("test_*.c")):
    for name in re.findall(r"^static void (test_\w+)\s*\(", path.read_text(), re.M):
        for rule in re.findall(r"_([A-Z]\d+)(?=_)", "_" + name[5:]):
            tests.setdefault(rule, []).append(f"`{path.stem}`: {name}")

doc = root / "docs" / "semantics.md"
out = []
for line in doc.read_text().splitlines():
    m = re.match(r"^\| ([A-Z]\d+) \|", line)
    if m and line.count("|") >= 5:
        cells = line.split(" | ")
        found = tests.get(m.group(1), [])
        cells[-1] = ("<br>".join(found) if found else "—") + " |"
        line = " | ".join(cells)
    out.append(line)
doc.write_text("\n".join(out) + "\n")
