"""Applications: thin compositions of a trained VAE and a data adapter, one module per use.
A module that defines `add_commands(subparsers)` adds its CLI subcommands automatically."""
