"""KMS: customer-managed keys from CloudFormation, and in the saved state (`keys`)."""
