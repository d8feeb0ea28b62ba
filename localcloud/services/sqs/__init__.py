"""SQS: the `AWS::SQS::QueuePolicy` model (`queue_policy`); the message size quota as SQS counts it
(`message_size`)."""
