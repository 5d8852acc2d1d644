#!/usr/bin/env bash
# berth-runtime alone: build it, make a busybox OCI bundle, run a container
# from it and show what it sees (the main job is scripts/demo.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cargo build --release --locked -p berth-runtime
rt=$PWD/target/release/berth-runtime

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bundle/rootfs"/{bin,etc,tmp,proc,sys,dev}
cp /bin/busybox "$work/bundle/rootfs/bin/"
for applet in $(/bin/busybox --list); do
  [[ $applet == busybox ]] || ln -s busybox "$work/bundle/rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$work/bundle/rootfs/etc/passwd"
echo 'root:x:0:' >"$work/bundle/rootfs/etc/group"

cd "$work/bundle"
"$rt" spec
python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c",
    "echo \"hello from $(hostname), pid $$ of $(ls /proc | grep -c '^[0-9]') processes\"; "
    "echo 'network:'; ip -o link | cut -d' ' -f2; "
    "echo 'capabilities:'; grep CapEff /proc/self/status; "
    "echo 'writing /proc/sys:'; echo 1 > /proc/sys/kernel/panic || true"]
json.dump(c, open("config.json", "w"), indent=2)
PY
"$rt" --root "$work/state" run demo
