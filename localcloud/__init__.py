"""The embedded local cloud: a moto server on loopback plus the glue that runs a deployed CDK app in it.
`core/` is what belongs to no one AWS service: the server process (`python -m localcloud.core.server`),
starting and finding it (`cloud`), its home and saved state (`state`, `persistence`) and fault injection
(`chaos`, `wire`); `services/<service>/` holds, per AWS service, what it adds to or changes in moto (Lambda's
runner and event source mappings, Step Functions fixes, EventBridge, CloudWatch alarms, DynamoDB,
CloudFormation models and exports, policy evaluation under `iam/`). docs/local-cloud-internals.md has each
module."""
