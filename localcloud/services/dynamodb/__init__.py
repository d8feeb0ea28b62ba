"""DynamoDB: atomic item writes (`dynamodb_items`) and `AWS::DynamoDB::Table` updates (`dynamodb_table`)."""
