#!/usr/bin/env python3
"""Which modules of src/ import each other (the circles DESIGN.md asks to remove): a rough
reading of `crate::` and `super::` paths outside tests. Usage: python3 scripts/floors.py"""
import re,os,glob,collections
mods=collections.defaultdict(set)
def modname(p):
    r=os.path.relpath(p,'src')[:-3]
    r=r.replace('/mod','')
    return r.replace('/','::')
files=glob.glob('src/**/*.rs',recursive=True)
names={modname(p) for p in files}
for p in files:
    m=modname(p)
    s=open(p).read()
    s=s.split('#[cfg(test)]')[0]
    for t in re.findall(r'crate::([a-z_]+(?:::[a-z_]+)?)',s):
        cand=t if t in names else t.split('::')[0]
        if cand in names and cand!=m and not m.startswith(cand+'::') : mods[m].add(cand)
    par=m.rsplit('::',1)[0] if '::' in m else None
    for t in re.findall(r'super::([a-z_]+)',s):
        if par and par+'::'+t in names: mods[m].add(par+'::'+t)
top=collections.defaultdict(set)
for a,bs in mods.items():
    for b in bs:
        ta,tb=a.split('::')[0],b.split('::')[0]
        if ta!=tb: top[ta].add(tb)
print("top-level pairs importing each other:",sorted({tuple(sorted((a,b))) for a in top for b in top[a] if a in top.get(b,())}))
print("submodule pairs:",sorted({tuple(sorted((a,b))) for a in mods for b in mods[a] if a in mods.get(b,()) }))
