"""Expression reading: MediaPipe Face Landmarker (reader), blendshapes -> FACS AUs (au),
video tracks with smoothing and gap filling (track), Live Link Face CSV (llf)."""
