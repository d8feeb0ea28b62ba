"""The domain of the pipeline's Lambda functions: pure logic plus small adapters whose clients are injected.

Nothing here imports the CDK. Handlers (`lambda_src/handlers`) parse events and call into this package.
"""
