#!/usr/bin/env bash
# The main job. For every photo in ../shared/photos (or the photos given as arguments):
#   out/<name>/asset/   the fitted FaceAsset with overlay.png and texture_preview.png
#   out/<name>/render/  frames/ (the face moving from the photo's expression into
#                       $PRESET, wrinkles following), neural/ and neural_proxy/ (the same
#                       through the neural render pass, with and without details),
#                       scene.blend, face.fbx
# Environment: PRESET (happy), FRAMES (12), ENGINE (eevee), RESOLUTION (512), NEURAL (1).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# the main job needs no Blender LTS test environments (scripts/test.sh makes them)
export FACEDET3D_LTS="${FACEDET3D_LTS:-0}"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
photos=("$@")
[ ${#photos[@]} -gt 0 ] || photos=("$ROOT"/../shared/photos/*)
for p in "${photos[@]}"; do
  name="$(basename "${p%.*}")"
  .venv/bin/facedet3d fit "$p" -o "out/$name/asset" --overlay
  .venv/bin/facedet3d render "$p" --preset "${PRESET:-happy}" --frames "${FRAMES:-12}" \
    --engine "${ENGINE:-eevee}" --resolution "${RESOLUTION:-512}" --fbx \
    $([ "${NEURAL:-1}" = 0 ] || echo --neural) -o "out/$name/render"
done
echo "main: results in $ROOT/out/ (asset/overlay.png, render/frames/, render/neural/, render/scene.blend, render/face.fbx)"
