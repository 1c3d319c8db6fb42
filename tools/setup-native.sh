#!/usr/bin/env bash
# Installs what the native plugin build needs when it is missing: gcc (NativeAOT links libonnxdeconv.so with it, and
# the C host test compiles with it) and binutils' objcopy (NativeAOT strips symbols into a .dbg file).
# Idempotent; run as root (CI and the dev machines are). Used by the plugin tests' publish fixture.
set -euo pipefail
missing=()
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v objcopy >/dev/null 2>&1 || missing+=(binutils)
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-native: gcc and objcopy present"
  exit 0
fi
echo "setup-native: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" libc6-dev
