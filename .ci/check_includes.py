#!/usr/bin/env python3
"""Fails when a file includes a header from a room its target does not link.

A room is a folder with one library (sluice_library in its CMakeLists.txt);
a file belongs to the room of its folder. Tests, fuzzers, benchmarks and
the two mains belong to their executables. A quoted #include of a project
header is allowed when the header's room is the file's own target or one
it links, directly or through other rooms, as CMake's dependency graph
says (`cmake --graphviz`, written when the build is configured).

Usage: check_includes.py <graphviz .dot file> [<source root>]
Exit 0 when every include is allowed, 1 otherwise (each one printed).
"""

import collections
import os
import re
import sys

EDGE = re.compile(r'^\s*"node\d+" -> "node\d+".*// (\S+) -> (\S+)\s*$')
NODE = re.compile(r'^\s*"node\d+" \[ label = "([^"]+)"')
LIBRARY = re.compile(r"sluice_library\(\s*(\w+)")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
SOURCE_DIRS = ("common", "proxy", "quota-server", "tests", "bench")
GENERATED = {
    "sluice/v1/quota.pb.h": "sluice_proto_msgs",
    "sluice/v1/quota.grpc.pb.h": "sluice_proto",
}


def read_graph(dot_path):
    nodes, edges = set(), collections.defaultdict(set)
    with open(dot_path) as f:
        for line in f:
            m = EDGE.match(line)
            if m:
                edges[m.group(1)].add(m.group(2))
                continue
            m = NODE.match(line)
            if m:
                nodes.add(m.group(1))
    return nodes, edges


def closure(edges, target):
    seen, stack = {target}, [target]
    while stack:
        for dep in edges.get(stack.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return seen


def room_libraries(root):
    """Folder (relative to root) -> the library declared in its CMakeLists."""
    rooms = {}
    for top in SOURCE_DIRS:
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            if "CMakeLists.txt" not in files:
                continue
            with open(os.path.join(dirpath, "CMakeLists.txt")) as f:
                libs = LIBRARY.findall(f.read())
            if len(libs) == 1:
                rooms[os.path.relpath(dirpath, root)] = libs[0]
    return rooms


def owner(path, rooms):
    """The target a source file belongs to, or None."""
    folder, name = os.path.split(path)
    stem = os.path.splitext(name)[0]
    if folder in rooms:
        return rooms[folder]
    if path == "proxy/main.cc":
        return "sluice-proxy"
    if path == "quota-server/main.cc":
        return "sluice-quota-server"
    if folder == "tests/sim" and stem.startswith("fleet_sim"):
        return "sluice_sim"
    if folder == "tests/fuzz" or folder == "bench":
        return stem
    if folder.startswith("tests/") and stem.endswith("_test"):
        return re.sub(r"[/-]", "_", folder[len("tests/"):]) + "_" + stem
    if folder.startswith("tests/") and name.endswith(".h"):
        # A helper of the tests of one room: held to that room's library
        # and tests/testing, which each of those tests links.
        return rooms.get(folder[len("tests/"):])
    return None


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = argv[2] if len(argv) > 2 else os.getcwd()
    nodes, edges = read_graph(argv[1])
    rooms = room_libraries(root)
    problems, checked = [], 0
    for top in SOURCE_DIRS:
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for name in sorted(files):
                if not name.endswith((".cc", ".h")):
                    continue
                path = os.path.relpath(os.path.join(dirpath, name), root)
                target = owner(path, rooms)
                if target is None:
                    problems.append(f"{path}: belongs to no library")
                    continue
                if target not in nodes:
                    continue  # not built in this configuration
                allowed = closure(edges, target)
                if path.startswith("tests/") and name.endswith(".h"):
                    # A room's test helper: every test links tests/testing.
                    allowed |= closure(edges, "sluice_testing")
                with open(os.path.join(root, path)) as f:
                    text = f.read()
                for inc in INCLUDE.findall(text):
                    if inc in GENERATED:
                        inc_owner = GENERATED[inc]
                    elif os.path.exists(os.path.join(root, inc)):
                        inc_owner = owner(inc, rooms)
                    else:
                        continue  # a package's header
                    checked += 1
                    if inc_owner not in allowed:
                        problems.append(
                            f"{path} ({target}) includes {inc} "
                            f"({inc_owner}), which {target} does not link")
    for p in problems:
        print(p)
    print(f"check_includes: {checked} includes checked, "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
