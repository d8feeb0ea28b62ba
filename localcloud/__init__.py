"""The embedded local cloud: moto server on loopback plus the glue that makes the deployed `local`
environment run (Lambda runner, Step Functions fixes, SQS event-source poller, alarm evaluator)."""
