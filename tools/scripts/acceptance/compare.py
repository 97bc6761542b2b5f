#!/usr/bin/env python3
"""Acceptance item 3: compare kazoo's own test suite on ZooKeeper and on corekeeper.

Reads two JUnit XML reports of the same kazoo test modules (one run against ZooKeeper
3.8, one against corekeeper) and compares the outcome of every test. A test that passes
on ZooKeeper must pass on corekeeper too, unless it is listed in the allow-list file
(known-differences.txt: one `test_id  reason` a line, `#` comments), and every listed
test id must also be named in README.md's "## Compatibility" section, so the list the
script enforces and the one users read cannot drift apart.

Test ids are `<junit classname>::<name>`, e.g.
`kazoo.tests.test_client.TestClient::test_create`.

Exit status: 0 when there is no unlisted difference, 1 otherwise, 2 on bad input.
The last line is `compare: N passed, M failed, K known differences`, where N counts the
tests that pass on both, M the unlisted regressions, K the listed ones.
"""

import argparse
import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path


def outcomes(junit_path):
    """{test id: 'passed' | 'failed' | 'error' | 'skipped'} from one JUnit XML report."""
    root = ET.parse(junit_path).getroot()
    result = {}
    for case in root.iter("testcase"):
        tid = f"{case.get('classname')}::{case.get('name')}"
        kinds = [child.tag for child in case]
        if "error" in kinds:
            result[tid] = "error"
        elif "failure" in kinds:
            result[tid] = "failed"
        elif "skipped" in kinds:
            result[tid] = "skipped"
        else:
            result[tid] = "passed"
    return result


def known_differences(path):
    """{test id: reason}; raises ValueError naming the line on a malformed entry."""
    known = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise ValueError(f"{path}:{n}: expected `test_id  reason`, got {line!r}")
        known[parts[0]] = parts[1].strip()
    return known


def compatibility_section(readme):
    text = Path(readme).read_text()
    m = re.search(r"^## Compatibility\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    return m.group(1) if m else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zookeeper", required=True, help="JUnit XML of the ZooKeeper run")
    ap.add_argument("--corekeeper", required=True, help="JUnit XML of the corekeeper run")
    ap.add_argument("--known", required=True, help="known-differences.txt")
    ap.add_argument("--readme", required=True, help="README.md with a Compatibility section")
    a = ap.parse_args()

    try:
        zk, ck = outcomes(a.zookeeper), outcomes(a.corekeeper)
        known = known_differences(a.known)
    except (OSError, ET.ParseError, ValueError) as e:
        print(f"compare: bad input: {e}", file=sys.stderr)
        return 2

    for name, res in (("zookeeper", zk), ("corekeeper", ck)):
        c = Counter(res.values())
        print(f"kazoo suite on {name}: {len(res)} tests: " +
              ", ".join(f"{c[k]} {k}" for k in ("passed", "failed", "error", "skipped")))

    both, regressions, listed = 0, [], []
    for tid in sorted(zk):
        if zk[tid] != "passed":
            continue
        got = ck.get(tid, "missing")
        if got == "passed":
            both += 1
        elif tid in known:
            listed.append((tid, got))
        else:
            regressions.append((tid, got))

    for tid, got in listed:
        print(f"known difference: {tid}: {got} on corekeeper ({known[tid]})")
    for tid, got in regressions:
        print(f"REGRESSION: {tid}: passed on zookeeper, {got} on corekeeper")
    for tid in sorted(ck):
        if ck[tid] == "passed" and zk.get(tid) != "passed":
            print(f"note: {tid}: passed on corekeeper, {zk.get(tid, 'missing')} on zookeeper")
    stale = [t for t in known if zk.get(t) == "passed" and ck.get(t) == "passed"]
    for tid in stale:
        print(f"note: {tid} is listed as a known difference but now passes on both")

    section = compatibility_section(a.readme)
    unexplained = [t for t in known if t not in section]
    for tid in unexplained:
        print(f"UNDOCUMENTED: {tid} is in {a.known} but not in README's Compatibility section")

    failed = len(regressions) + len(unexplained)
    print(f"compare: {both} passed, {failed} failed, {len(listed)} known differences")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
