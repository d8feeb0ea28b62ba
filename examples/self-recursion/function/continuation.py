"""The seed's anti-pattern, kept as a warning: a long job split into chunks, each invocation processing one
and sending the rest of the job back to its own queue as a continuation.

It works for 16 chunks. Lambda's recursive loop detection counts the hops of the chain (the trace lineage
botocore sends from inside a function, which SQS keeps on the message) and drops the 17th invocation: the
continuation is not delivered, the queue's redrive policy moves it to the DLQ, and the job stops mid-way.
Long work belongs in a state machine (this project's segmented jobs), not in a queue that feeds itself.
"""

import json
import os
from urllib.parse import urlparse

import boto3

s3 = boto3.client("s3")
sqs = boto3.client("sqs")


def handler(event, context):
    for record in event["Records"]:
        step = json.loads(record["body"])
        source = urlparse(step["input"])
        start = step["chunk"] * step["chunk_bytes"]
        end = min(start + step["chunk_bytes"], step["size"]) - 1
        body = s3.get_object(Bucket=source.netloc, Key=source.path.lstrip("/"), Range=f"bytes={start}-{end}")
        lines = body["Body"].read().count(b"\n")
        print(json.dumps({"job_id": step["job_id"], "chunk": step["chunk"], "lines": lines}))
        if end + 1 < step["size"]:
            # The anti-pattern: the rest of the job goes back to the queue that triggers this function.
            next_step = {**step, "chunk": step["chunk"] + 1}
            sqs.send_message(QueueUrl=os.environ["QUEUE_URL"], MessageBody=json.dumps(next_step))
