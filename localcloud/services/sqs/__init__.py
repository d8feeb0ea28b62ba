"""SQS: the `AWS::SQS::QueuePolicy` model (`queue_policy`)."""
