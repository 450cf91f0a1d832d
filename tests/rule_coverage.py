#!/usr/bin/env python3
"""Every rule id of the behaviour spec's engine sections must have a test
named after it and a line in docs/semantics.md.

Usage: rule_coverage.py SPEC SOURCE_ROOT PREFIX...  (e.g. R N F M A C E)
Exit 77 (skipped) when the spec is not beside the project.
"""
import pathlib
import re
import sys


def main() -> int:
    spec, root, prefixes = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3:]
    if not spec.exists():
        print(f"skip: {spec} not found")
        return 77
    text = spec.read_text(encoding="utf-8")
    ids = sorted(
        {m.group(1) for m in re.finditer(r"\*\*([A-Z]\d+)\b", text) if m.group(1)[0] in prefixes},
        key=lambda r: (r[0], int(r[1:])),
    )
    tests = "\n".join(p.read_text(encoding="utf-8") for p in (root / "tests").glob("test_*.c"))
    named = set(re.findall(r"\btest_([A-Z]\d+)_", tests))
    semantics = (root / "docs" / "semantics.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"\|\s*([A-Z]\d+)\s*\|", semantics))
    missing_tests = [r for r in ids if r not in named]
    missing_docs = [r for r in ids if r not in documented]
    print(f"{len(ids)} rule ids; {len(ids) - len(missing_tests)} with tests; "
          f"{len(ids) - len(missing_docs)} in docs/semantics.md")
    if missing_tests:
        print("rules without a test named after them:", " ".join(missing_tests))
    if missing_docs:
        print("rules missing from docs/semantics.md:", " ".join(missing_docs))
    return 1 if missing_tests or missing_docs else 0


if __name__ == "__main__":
    sys.exit(main())
