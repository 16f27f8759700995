"""Extra `align` subcommands, one module each (see align/cli.py COMMAND_MODULES)."""
