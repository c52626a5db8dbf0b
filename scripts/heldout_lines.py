#!/usr/bin/env python3
"""Writes a held-out set's lines as `voxdesk eval calls --lines` files: OUT-angry.txt (the
angry and frustrated lines: every call should be handed over) and OUT-calm.txt (the other
lines with an emotion, leaving out those that ask for a person or a sensitive topic, which
are handed over by design). Usage: scripts/heldout_lines.py nlu/heldout.jsonl /tmp/heldout"""
import json, sys

rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
by_design = {"agent_request", "complaint", "cancel_service", "fraud"}
angry = [r["text"] for r in rows if r.get("emotion") in ("angry", "frustrated")]
calm = [r["text"] for r in rows
        if r.get("emotion") not in (None, "angry", "frustrated") and r.get("intent") not in by_design]
for name, lines in (("angry", angry), ("calm", calm)):
    open(f"{sys.argv[2]}-{name}.txt", "w", encoding="utf-8").write("\n".join(lines) + "\n")
    print(f"{sys.argv[2]}-{name}.txt: {len(lines)} lines")
