#!/usr/bin/env bash
# The README's main command: builds the CLI once, then runs the main job on the bundled DCGAN demo model.
# Output goes to ./out (created; the demo model itself is never modified).
set -euo pipefail
cd "$(dirname "$0")"
model=tests/models/dcgan_generator.onnx
dotnet build tools/onnx-deconv -c Release -v quiet -nologo
cli() { echo; echo "\$ onnx-deconv $*"; dotnet tools/onnx-deconv/bin/Release/net10.0/onnx-deconv.dll "$@"; }
mkdir -p out
cli explain --input 28 --kernel 5 --stride 2 --padding 0
cli info "$model"
cli optimize "$model" -o out/dcgan_generator.portable.onnx --target portable
cli verify "$model" out/dcgan_generator.portable.onnx
