"""Command line: ``facedet3d <command>``; one module per command, stages imported lazily."""

from facedet3d.cli.app import build_parser, main  # noqa: F401
