#!/usr/bin/env bash
# Installs what the native plugin build needs when it is missing: gcc (NativeAOT links libonnxdeconv-*.so with it, the
# dispatcher libonnxdeconv.so and the C host test compile with it) and binutils' objcopy (NativeAOT strips symbols into
# a .dbg file). With --qemu also qemu-user (qemu-x86_64 runs the C host as an older CPU: the plugin's ISA fallback tests).
# Idempotent; run as root (CI and the dev machines are). Used by the plugin tests' fixtures.
set -euo pipefail
missing=()
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v objcopy >/dev/null 2>&1 || missing+=(binutils)
if [ "${1:-}" = "--qemu" ]; then
  command -v qemu-x86_64 >/dev/null 2>&1 || missing+=(qemu-user)
fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-native: everything present"
  exit 0
fi
echo "setup-native: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
