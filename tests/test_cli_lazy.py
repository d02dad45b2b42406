"""`facedet3d --help` and `facedet3d fit --help` answer without importing torch (or OpenCV):
the CLI builds its parser from the command modules and imports the stages lazily."""

import subprocess
import sys

import pytest

PROBE = ("import sys, runpy; sys.argv = ['facedet3d', *{args!r}]\n"
         "try:\n    runpy.run_module('facedet3d.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
         "heavy = sorted({{m.split('.')[0] for m in sys.modules}} & {{'torch', 'cv2', 'onnxruntime', 'scipy'}})\n"
         "print('HEAVY=' + ','.join(heavy))")


@pytest.mark.parametrize("args", [["--help"], ["fit", "--help"], ["render", "--help"], ["detail", "--help"]])
def test_help_imports_no_heavy_stage(args):
    res = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True, timeout=60)
    assert "usage: facedet3d" in res.stdout
    assert res.stdout.strip().splitlines()[-1] == "HEAVY=", res.stdout.strip().splitlines()[-1]
