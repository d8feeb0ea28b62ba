"""S3: object notifications as S3 sends them, and a bucket's NotificationConfiguration from CloudFormation."""
