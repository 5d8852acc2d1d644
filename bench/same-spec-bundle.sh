# shellcheck shell=bash
# Sourced by bench/engine-run.sh and bench/engine-detached.sh: a crun
# bundle holding berth's own spec for a busybox container (the config.json
# berth writes for people): the same namespaces, mounts, masked paths,
# capabilities, cgroup device rules and Docker's seccomp profile, over the
# same rootfs. What differs is only what berth's spec points into its
# container directory (hosts, hostname, resolv.conf: copied into the
# bundle) and the root, which is the image's rootfs directory here and
# berth's overlay there. Both in the host's user namespace (--userns=host).
#
# same_spec_bundle BERTH STORE IMAGE ROOTFS BUNDLE CGROUP ARGS_JSON
#   BERTH, STORE: berth and its --root, where IMAGE is; ROOTFS: the image's
#   rootfs directory; BUNDLE: made here; CGROUP: the bundle's cgroupsPath;
#   ARGS_JSON: the process's arguments as a JSON list.
same_spec_bundle() {
    local berth=$1 store=$2 image=$3 rootfs=$4 bundle=$5 cgroup=$6 args=$7
    local name id f
    name="bench-spec-$$"
    # In the host's user namespace: berth's own namespace needs its
    # idmapped rootfs, which a plain bundle directory is not (bench/userns.sh
    # measures what the namespace costs).
    "$berth" --root "$store" run --name "$name" --network=none --userns=host "$image" true >/dev/null
    id=$("$berth" --root "$store" inspect -f '{{.Id}}' "$name")
    mkdir -p "$bundle"
    for f in config.json hosts hostname resolv.conf; do
        cp "$store/containers/$id/$f" "$bundle/"
    done
    "$berth" --root "$store" rm "$name" >/dev/null
    ln -s "$rootfs" "$bundle/rootfs"
    python3 - "$bundle" "$store/containers/$id" "$cgroup" "$args" <<'PY'
import json, sys
bundle, berth_dir, cgroup, args = sys.argv[1:5]
p = f"{bundle}/config.json"
c = json.load(open(p))
# This crun knows runtime-spec versions up to 1.0.x by name only.
c["ociVersion"] = "1.0.2"
c["root"] = {"path": "rootfs", "readonly": False}
c["process"]["args"] = json.loads(args)
for m in c["mounts"]:
    if m["source"].startswith(berth_dir + "/"):
        m["source"] = bundle + m["source"][len(berth_dir):]
    assert not m["source"].startswith(berth_dir), m
c["linux"]["cgroupsPath"] = cgroup
assert c["linux"].get("seccomp"), "berth's spec has no seccomp profile"
json.dump(c, open(p, "w"))
PY
}
