"""The `pipeline` sub-commands, one module per command group; their helpers live in `pipeline_cli/`."""
