"""SNS: the `AWS::SNS::TopicPolicy` model (`topic_policy`)."""
