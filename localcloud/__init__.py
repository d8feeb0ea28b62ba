"""The embedded local cloud: a moto server on loopback plus the glue that runs a deployed CDK app in it
(Lambda runner, Step Functions fixes, CloudFormation models, SQS event-source poller, alarm evaluator)."""
