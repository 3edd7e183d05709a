#!/usr/bin/env python3
"""Fails when a file includes a header its target does not declare.

A room is a folder with one library (sluice_library in its CMakeLists.txt);
a file belongs to the room of its folder and must be named in that folder's
CMakeLists.txt. Tests, fuzzers, benchmarks and the two mains belong to
their executables.

The rules, against CMake's dependency graph (`cmake --graphviz`, written
when the build is configured):
  * a room's file may include headers of its own room and of the rooms its
    library names in DEPS, directly: the declared dependencies are exact;
  * an executable's file (a test, fuzzer, benchmark or main) may include
    headers of any room it links, directly or through other rooms;
  * a room's test helper header (tests/<room>/*.h) is held to its room's
    library and tests/testing, which every test of that room links.
Project headers are found however they are spelled: quoted or in angle
brackets, from the root or relative to the including file.

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
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^">]+)[">]', re.M)
SOURCE_DIRS = ("common", "proxy", "quota-server", "tests", "bench")
GENERATED = {
    "sluice/v1/quota.pb.h": "sluice_proto_msgs",
    "sluice/v1/quota.grpc.pb.h": "sluice_proto",
}
# Executables only some configurations build: fuzzers need clang
# (SLUICE_FUZZ), benchmarks SLUICE_BENCH.
OPTIONAL_FOLDERS = ("tests/fuzz", "bench")


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
    """Folder (relative to root) -> (library, text of its CMakeLists)."""
    rooms = {}
    for top in SOURCE_DIRS:
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            if "CMakeLists.txt" not in files:
                continue
            with open(os.path.join(dirpath, "CMakeLists.txt")) as f:
                text = f.read()
            libs = LIBRARY.findall(text)
            if len(libs) == 1:
                rooms[os.path.relpath(dirpath, root)] = (libs[0], text)
    return rooms


def owner(path, rooms):
    """The target a source file belongs to, or None."""
    folder, name = os.path.split(path)
    stem = os.path.splitext(name)[0]
    if folder in rooms:
        return rooms[folder][0]
    if path == "proxy/main.cc":
        return "sluice-proxy"
    if path == "quota-server/main.cc":
        return "sluice-quota-server"
    if folder == "tests/sim" and stem.startswith("fleet_sim"):
        return "sluice_sim"
    if folder in OPTIONAL_FOLDERS:
        return stem
    if folder.startswith("tests/") and stem.endswith("_test"):
        return re.sub(r"[/-]", "_", folder[len("tests/"):]) + "_" + stem
    if folder.startswith("tests/") and name.endswith(".h"):
        room = rooms.get(folder[len("tests/"):])
        return room[0] if room else None
    return None


def resolve(inc, including, root):
    """The project path an include names, or None for a package header."""
    if inc in GENERATED:
        return inc
    for base in (os.path.dirname(including), ""):
        path = os.path.normpath(os.path.join(base, inc))
        if not path.startswith("..") and os.path.isfile(
                os.path.join(root, path)):
            return path
    return None


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = argv[2] if len(argv) > 2 else os.getcwd()
    nodes, edges = read_graph(argv[1])
    rooms = room_libraries(root)
    room_libs = {lib for lib, _ in rooms.values()}
    problems, checked = [], 0
    for top in SOURCE_DIRS:
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for name in sorted(files):
                if not name.endswith((".cc", ".h")):
                    continue
                path = os.path.relpath(os.path.join(dirpath, name), root)
                folder = os.path.dirname(path)
                target = owner(path, rooms)
                if target is None:
                    problems.append(f"{path}: belongs to no library")
                    continue
                if folder in rooms and not re.search(
                        r"(^|\s)" + re.escape(name) + r"(\s|\))",
                        rooms[folder][1]):
                    problems.append(f"{path}: not named in {folder}/"
                                    "CMakeLists.txt")
                if target not in nodes:
                    if not folder.startswith(OPTIONAL_FOLDERS):
                        problems.append(f"{path}: its target {target} is not "
                                        "in the build")
                    continue
                if target in room_libs and not path.startswith("tests/"):
                    allowed = {target} | edges.get(target, set())
                else:
                    allowed = closure(edges, target)
                    if path.startswith("tests/") and name.endswith(".h"):
                        allowed |= closure(edges, "sluice_testing")
                with open(os.path.join(root, path)) as f:
                    text = f.read()
                for inc in INCLUDE.findall(text):
                    inc_path = resolve(inc, path, root)
                    if inc_path is None:
                        continue  # a package's header
                    inc_owner = GENERATED.get(inc_path) or owner(inc_path,
                                                                 rooms)
                    checked += 1
                    if inc_owner not in allowed:
                        problems.append(
                            f"{path} ({target}) includes {inc} "
                            f"({inc_owner}), which {target} does not "
                            + ("declare in DEPS" if target in room_libs
                               else "link"))
    if checked == 0:
        problems.append("no include was checked: is the graph empty?")
    for p in problems:
        print(p)
    print(f"check_includes: {checked} includes checked, "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
