"""S3: the `AWS::S3::BucketPolicy` model (`bucket_policy`); object notifications as S3 sends them, and a bucket's
NotificationConfiguration from CloudFormation (`notifications`)."""
