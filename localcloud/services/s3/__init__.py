"""S3: the `AWS::S3::BucketPolicy` model (`bucket_policy`)."""
