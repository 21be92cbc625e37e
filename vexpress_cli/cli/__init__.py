"""The ``vexpress`` command line: one module per command, all sharing the engine."""
