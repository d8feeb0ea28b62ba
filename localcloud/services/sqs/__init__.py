"""SQS: the message size quota as SQS counts it (`message_size`)."""
