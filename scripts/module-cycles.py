#!/usr/bin/env python3
"""Fails when a module of a crate imports a module that imports it back.

For each crate of the workspace (each folder with a Cargo.toml) and each of
its source roots (src/, tests/, benches/), a file's non-test code (before its
first `#[cfg(test)]`) that names `crate::a::b`, `super::b` (or an item of
its parent, `super::Item`), or a path through one of its own submodules
(`child::f()`, `pub use child::X`) depends on the deepest module that path
names. A strongly connected set of two or more
modules is a cycle: printed with its edges, and the exit status is 1.

This reads source text, not the compiler's view: a `use` through a re-export
counts as a use of the module that re-exports. That errs towards reporting.

Usage: scripts/module-cycles.py [workspace root]
"""

import os
import re
import sys

PATH = r"[a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*"
ANY_PATH = r"[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*"


def source_roots(root):
    for crate in sorted(os.listdir(root)):
        if not os.path.exists(os.path.join(root, crate, "Cargo.toml")):
            continue
        for sub in ("src", "tests", "benches"):
            path = os.path.join(root, crate, sub)
            if os.path.isdir(path):
                yield f"{crate}/{sub}", path


def module_name(base, path):
    parts = os.path.relpath(path, base)[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return "::".join(parts)


def dependencies(base):
    texts = {}
    for folder, _, files in os.walk(base):
        for name in files:
            if name.endswith(".rs"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    texts[module_name(base, path)] = f.read()
    edges = {}
    for module, text in texts.items():
        code = re.sub(r"//[^\n]*", "", text).split("#[cfg(test)]")[0]
        own = module.split("::") if module else []
        paths = [p.split("::") for p in re.findall(r"crate::(" + PATH + ")", code)]
        # `super::item` depends on the parent module itself (unless that is the crate root).
        parent = own[:-1]
        floor = {}
        for p in re.findall(r"super::(" + ANY_PATH + ")", code):
            paths.append(parent + p.split("::"))
            floor[len(paths) - 1] = max(len(parent), 1)
        # A path through one of its own submodules (`child::f()`, `pub use child::X`).
        children = {m.split("::")[-1] for m in texts if m and m.split("::")[:-1] == own}
        for child in children:
            if re.search(r"(?<![:\w])" + child + r"::", code):
                paths.append(own + [child])
        edges[module] = set()
        for i, parts in enumerate(paths):
            for end in range(len(parts), floor.get(i, 1) - 1, -1):
                target = "::".join(parts[:end])
                if target in texts:
                    if target != module:
                        edges[module].add(target)
                    break
    return edges


def cycles(edges):
    """Tarjan's strongly connected components of two or more modules."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    bad = 0
    for label, base in source_roots(root):
        edges = dependencies(base)
        for component in cycles(edges):
            bad += 1
            shown = lambda m: m or "(crate root)"
            print(f"{label}: modules import each other: {', '.join(map(shown, component))}")
            for a in component:
                for b in sorted(edges[a] & set(component)):
                    print(f"    {shown(a)} -> {shown(b)}")
    if bad:
        print(f"{bad} import cycle(s)", file=sys.stderr)
        return 1
    print("no module import cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
