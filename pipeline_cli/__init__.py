"""`pipeline`: operate resilient-pipeline jobs on AWS or on the local cloud, and review infra diffs."""
