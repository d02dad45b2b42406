import sys

from facedet3d.cli.app import main

sys.exit(main())
