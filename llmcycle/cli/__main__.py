"""``python -m llmcycle.cli`` is the ``llmcycle`` command."""

from llmcycle.cli.app import main

main()
