#!/usr/bin/env python3
"""Which modules of src/ import each other (the circles DESIGN.md asks to remove), and the
floors they stand on: a rough reading of `crate::` and `super::` paths outside tests.
Prints the import circles of any length (strongly connected components), first between
top-level modules, then between submodules, then the top-level modules floor by floor
(a module imports only from floors below it). Usage: python3 scripts/floors.py"""
import collections, glob, os, re, sys

sys.setrecursionlimit(10000)


def modname(p):
    r = os.path.relpath(p, 'src')[:-3]
    r = r.replace('/mod', '')
    return r.replace('/', '::')


files = glob.glob('src/**/*.rs', recursive=True)
names = {modname(p) for p in files} - {'main', 'lib'}
mods = collections.defaultdict(set)
for p in files:
    m = modname(p)
    if m not in names:
        continue
    s = open(p).read().split('#[cfg(test)]')[0]
    for t in re.findall(r'crate::([a-z_]+(?:::[a-z_]+)?)', s):
        cand = t if t in names else t.split('::')[0]
        if cand in names and cand != m and not m.startswith(cand + '::'):
            mods[m].add(cand)
    par = m.rsplit('::', 1)[0] if '::' in m else None
    for t in re.findall(r'super::([a-z_]+)', s):
        if par and par + '::' + t in names:
            mods[m].add(par + '::' + t)
top = collections.defaultdict(set)
for a, bs in mods.items():
    for b in bs:
        ta, tb = a.split('::')[0], b.split('::')[0]
        if ta != tb:
            top[ta].add(tb)


def circles(graph, nodes):
    """Tarjan's strongly connected components with more than one module."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            c = []
            while True:
                w = stack.pop()
                on.discard(w)
                c.append(w)
                if w == v:
                    break
            if len(c) > 1:
                out.append(sorted(c))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


tops = {n.split('::')[0] for n in names}
print("top-level import circles:", circles(top, tops) or "none")
print("submodule import circles:", circles(mods, names) or "none")
if not circles(top, tops):
    floor = {}

    def f(m):
        if m not in floor:
            floor[m] = 1 + max((f(d) for d in top.get(m, ())), default=-1)
        return floor[m]

    for m in tops:
        f(m)
    print("floors (a module imports only from floors below it):")
    for lvl in sorted(set(floor.values()), reverse=True):
        print(f"  {lvl:2}: {' '.join(sorted(m for m in tops if floor[m] == lvl))}")
