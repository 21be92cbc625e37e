"""``python -m vexpress_cli`` runs the ``vexpress`` command."""

from vexpress_cli.cli.app import main

main()
