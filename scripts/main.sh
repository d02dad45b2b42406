#!/usr/bin/env bash
# The main job: every photo in ../shared/photos (or the photos given as arguments) ->
# a FaceAsset folder under out/<name>/ with overlay pictures.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
photos=("$@")
[ ${#photos[@]} -gt 0 ] || photos=("$ROOT"/../shared/photos/*)
for p in "${photos[@]}"; do
  name="$(basename "${p%.*}")"
  .venv/bin/facedet3d fit "$p" -o "out/$name" --overlay
done
echo "main: FaceAssets in $ROOT/out/ (open out/*/overlay.png and out/*/texture_preview.png)"
