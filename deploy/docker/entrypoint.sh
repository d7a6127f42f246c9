#!/bin/sh
# The container's entrypoint: render this node's config, format its data directory once, and
# run `raftka server`.
#
# In a StatefulSet each pod is named <set>-<ordinal>; the node id is RAFTKA_NODE_ID_BASE plus
# that ordinal (controllers 1, 2, 3; brokers 100, 101, ...), so a pod keeps its identity, and
# its volume, across restarts and rescheduling. RAFTKA_NODE_ID overrides it (one node by hand).
#
# The template (RAFTKA_CONFIG_TEMPLATE, a ConfigMap) may use @NODE_ID@ and @POD_NAME@; the
# rendered file goes to RAFTKA_CONFIG. An empty data directory (a new pod, or a broker whose
# disk was replaced) is formatted for RAFTKA_CLUSTER_ID, which every node of a cluster shares.
#
#   raftka-entrypoint                 render, format if empty, exec `raftka server`
#   raftka-entrypoint render          render and print the config (a dry run)
#   raftka-entrypoint raftka ARGS...  run any raftka command instead (topics, quorum, ...)
set -eu

if [ "${1:-}" = "raftka" ]; then
    exec "$@"
fi

template="${RAFTKA_CONFIG_TEMPLATE:-/etc/raftka/config/node.toml}"
config="${RAFTKA_CONFIG:-/run/raftka/node.toml}"
data_dir="${RAFTKA_DATA_DIR:-/var/lib/raftka/data}"
pod="${POD_NAME:-$(hostname)}"

fail() {
    echo "raftka-entrypoint: $*" >&2
    exit 2
}

if [ -n "${RAFTKA_NODE_ID:-}" ]; then
    node_id="$RAFTKA_NODE_ID"
else
    ordinal="${pod##*-}"
    case "$ordinal" in
        '' | *[!0-9]*)
            fail "cannot take a pod ordinal from the name '$pod' (a StatefulSet names its pods" \
                "<set>-<n>); set RAFTKA_NODE_ID to run this node by hand" ;;
    esac
    node_id=$(( ${RAFTKA_NODE_ID_BASE:-0} + ordinal ))
fi
case "$node_id" in
    '' | *[!0-9]*) fail "RAFTKA_NODE_ID '$node_id' is not a non-negative integer" ;;
esac
[ -r "$template" ] || fail "config template $template is missing (mount the ConfigMap there" \
    "or set RAFTKA_CONFIG_TEMPLATE)"

mkdir -p "$(dirname "$config")"
sed -e "s|@NODE_ID@|$node_id|g" -e "s|@POD_NAME@|$pod|g" "$template" > "$config.tmp"
mv "$config.tmp" "$config"

if [ "${1:-}" = "render" ]; then
    cat "$config"
    exit 0
fi

if [ ! -f "$data_dir/meta.properties" ]; then
    case "${RAFTKA_CLUSTER_ID:-}" in
        '' | REPLACE*)
            fail "$data_dir is not formatted and RAFTKA_CLUSTER_ID is not set: give every node" \
                "of the cluster the same id (1-64 of A-Z a-z 0-9 _ -), e.g. in the" \
                "raftka-cluster ConfigMap" ;;
    esac
    raftka format --config "$config" --cluster-id "$RAFTKA_CLUSTER_ID"
fi

exec raftka server --config "$config" "$@"
