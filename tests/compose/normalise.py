#!/usr/bin/env python3
"""Puts docker-compose 1.29's `config` and berth's (Compose v2's forms)
side by side: each YAML document is loaded and the forms the two define
differently are brought to one, and only those (the list is the comment
of each step, and docs/compose.md's). Prints the two as sorted JSON, one
per line: the test compares them.

usage: normalise.py PROJECT DOCKER_COMPOSE_YAML BERTH_YAML
"""
import json
import shlex
import sys

import yaml

project, v1_path, v2_path = sys.argv[1:4]
v1 = yaml.safe_load(open(v1_path))
v2 = yaml.safe_load(open(v2_path))

# v1 writes the file format's version; v2 has none but names the project.
v1.pop("version", None)
v2.pop("name", None)

for kind in ("networks", "volumes"):
    for key, d in (v2.get(kind) or {}).items():
        # v2 writes each resource's engine name; v1 only an external one's.
        if d and not d.get("external") and d.get("name") == f"{project}_{key}":
            d.pop("name")
    for key, d in list((v1.get(kind) or {}).items()):
        if d is None:
            v1[kind][key] = {}

for name, s in (v2.get("services") or {}).items():
    # v2 puts a service without networks on `default` (and declares it).
    if s.get("networks") == {"default": None}:
        s.pop("networks")
    for d in (s.get("depends_on") or {}).values():
        # v2's `required` (default true) did not exist in v1.
        if d.get("required") is True:
            d.pop("required")
# v1 never declares the implicit `default` network at the top level.
if (v2.get("networks") or {}).get("default") == {}:
    v2["networks"].pop("default")
if v2.get("networks") == {}:
    v2.pop("networks")

for name, s in (v1.get("services") or {}).items():
    # v2 splits a string command into words as a shell would.
    for key in ("command", "entrypoint"):
        if isinstance(s.get(key), str):
            s[key] = shlex.split(s[key])
    # v2's expose entries are strings.
    if "expose" in s:
        s["expose"] = [str(e) for e in s["expose"]]
    # v2 writes every port in the long form, published as a string, with
    # its protocol and mode.
    ports = []
    for p in s.get("ports", []):
        if isinstance(p, str):
            rest, _, proto = p.partition("/")
            parts = rest.split(":")
            d = {"target": int(parts[-1]), "protocol": proto or "tcp", "mode": "ingress"}
            if len(parts) >= 2:
                d["published"] = parts[-2]
            if len(parts) == 3:
                d["host_ip"] = parts[0]
            ports.append(d)
        else:
            p = dict(p)
            if "published" in p:
                p["published"] = str(p["published"])
            p.setdefault("protocol", "tcp")
            p.setdefault("mode", "ingress")
            ports.append(p)
    if ports:
        s["ports"] = ports
    # v2 writes volumes in the long form too.
    vols = []
    for v in s.get("volumes", []):
        if isinstance(v, str):
            parts = v.split(":")
            src, target = parts[0], parts[1]
            mode = parts[2] if len(parts) > 2 else "rw"
            bind = src.startswith("/")
            d = {"type": "bind" if bind else "volume", "source": src, "target": target}
            if "ro" in mode.split(","):
                d["read_only"] = True
            if bind:
                d["bind"] = {"create_host_path": True}
            else:
                d["volume"] = {}
            vols.append(d)
        else:
            vols.append(v)
    if vols:
        s["volumes"] = vols

print(json.dumps(v1, sort_keys=True))
print(json.dumps(v2, sort_keys=True))
