"""What is not one AWS service: the server process (`server`), starting and finding it (`cloud`), where it
lives (`state`), its saved state (`persistence`), and fault injection (`chaos`, over `wire`)."""
