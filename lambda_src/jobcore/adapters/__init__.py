"""boto3 implementations of jobcore.ports. Clients are injected, so tests can hand in moto's."""
