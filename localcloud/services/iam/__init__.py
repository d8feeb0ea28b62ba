"""IAM: policy evaluation (`policy`: resource-based policies, such as SNS topic policies)."""
