"""CloudFormation: stack exports kept current across updates (`stack_exports`)."""
