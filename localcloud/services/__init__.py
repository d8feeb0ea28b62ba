"""One package per AWS service, named as boto3 names the service (`lambda_`: `lambda` is a keyword), with
what the local cloud adds to or changes in moto for it. The `__init__` modules import nothing: the CLI
imports `localcloud.core` (chaos rules, the state file) without moto."""
