"""Lambda event source mappings: the SQS poller (`sqs_poller`, with the supervisor both share) and the
DynamoDB stream poller (`stream_poller`), in place of moto's push inside the sending call."""
