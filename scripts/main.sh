#!/usr/bin/env bash
# The main job. For every photo in ../shared/photos (or the photos given as arguments):
#   out/<name>/asset/   the fitted FaceAsset with overlay.png and texture_preview.png
#   out/<name>/render/  frames/ (the face moving from the photo's expression into
#                       $PRESET, wrinkles following), scene.blend, face.fbx
# Environment: PRESET (happy), FRAMES (12), ENGINE (eevee), RESOLUTION (512).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
photos=("$@")
[ ${#photos[@]} -gt 0 ] || photos=("$ROOT"/../shared/photos/*)
for p in "${photos[@]}"; do
  name="$(basename "${p%.*}")"
  .venv/bin/facedet3d fit "$p" -o "out/$name/asset" --overlay
  .venv/bin/facedet3d render "$p" --preset "${PRESET:-happy}" --frames "${FRAMES:-12}" \
    --engine "${ENGINE:-eevee}" --resolution "${RESOLUTION:-512}" --fbx -o "out/$name/render"
done
echo "main: results in $ROOT/out/ (asset/overlay.png, render/frames/, render/scene.blend, render/face.fbx)"
