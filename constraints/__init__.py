"""Each board's extra amaranth-boards resources, one module per board (``RESOURCES``).

Installed as the package ``sparsemac.constraints`` (pyproject.toml maps it from this folder),
so a wheel carries them; :func:`sparsemac.hw.boards.board_resources` reads them.
"""
