"""The operation table: each AWS API operation the pipeline, its tests and its local cloud make, as the IAM
action(s), resource ARN(s) and condition keys AWS authorizes it on (the Service Authorization Reference's
"Actions, resources, and condition keys" pages). An operation that is not here has no row: `checks` answers
None, and the enforcement refuses it for a role session (fail closed, so that a missing row shows up in a
test instead of passing silently).

Pure: a request in, checks out (no moto, no AWS calls).

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudservicesiamactionspy
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from localcloud.services.iam.authorization import Check
from localcloud.services.iam.requests import ApiRequest

ALL_RESOURCES = "*"


@dataclass(frozen=True)
class Scope:
    """Where the request's resources live when it names them by name only: the caller's account, and the
    region it signed for."""

    account: str
    region: str


Row = Callable[[ApiRequest, Scope], list[Check]]
_ROWS: dict[tuple[str, str], Row] = {}


def row(service: str, *operations: str) -> Callable[[Row], Row]:
    def register(function: Row) -> Row:
        for operation in operations:
            _ROWS[(service, operation)] = function
        return function

    return register


def checks(request: ApiRequest, scope: Scope) -> list[Check] | None:
    """What `request` needs allowed, every check of it; None when the table has no row for it."""
    if request.operation is None:
        return None
    found = _ROWS.get((request.service, request.operation))
    if found is None:
        return None
    return _unique(found(request, scope))


def rows() -> list[tuple[str, str]]:
    """Every (service, operation) the table maps, sorted: the documentation's list."""
    return sorted(_ROWS)


def _unique(found: Iterable[Check]) -> list[Check]:
    seen: dict[tuple[str, str, str], Check] = {}
    for check in found:
        seen.setdefault(
            (check.action, check.resource, json.dumps(dict(check.context), sort_keys=True)), check
        )
    return list(seen.values())


# -- S3 ---------------------------------------------------------------------------------------------------
# Objects are arn:aws:s3:::BUCKET/KEY, buckets arn:aws:s3:::BUCKET (no region, no account).


def _bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def _object_arn(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def _object(request: ApiRequest) -> str:
    return _object_arn(request.params.get("Bucket", ""), request.params.get("Key", ""))


def _versioned(request: ApiRequest, action: str) -> str:
    # Naming a version needs the Version action: GetObject with a VersionId is s3:GetObjectVersion.
    if request.query.get("versionId"):
        return action.replace("Object", "ObjectVersion", 1)
    return action


def _s3_write_context(request: ApiRequest) -> dict[str, str]:
    context = {}
    for header in ("x-amz-server-side-encryption", "x-amz-acl", "x-amz-storage-class"):
        if header in request.headers:
            context[f"s3:{header}"] = request.headers[header]
    return context


@row("s3", "GetObject", "HeadObject")
def _s3_get(request: ApiRequest, _: Scope) -> list[Check]:
    # HeadObject has no action of its own: it is s3:GetObject (s3:GetObjectVersion with a versionId).
    return [Check(_versioned(request, "s3:GetObject"), _object(request))]


@row("s3", "PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload")
def _s3_put(request: ApiRequest, _: Scope) -> list[Check]:
    return [Check("s3:PutObject", _object(request), _s3_write_context(request))]


@row("s3", "AbortMultipartUpload")
def _s3_abort(request: ApiRequest, _: Scope) -> list[Check]:
    return [Check("s3:AbortMultipartUpload", _object(request))]


@row("s3", "ListParts")
def _s3_list_parts(request: ApiRequest, _: Scope) -> list[Check]:
    return [Check("s3:ListMultipartUploadParts", _object(request))]


@row("s3", "DeleteObject")
def _s3_delete(request: ApiRequest, _: Scope) -> list[Check]:
    return [Check(_versioned(request, "s3:DeleteObject"), _object(request))]


@row("s3", "DeleteObjects")
def _s3_delete_many(request: ApiRequest, _: Scope) -> list[Check]:
    # Authorized per object named in the body, as S3 does (each key, or key version, on its own).
    bucket = request.params.get("Bucket", "")
    found: list[Check] = []
    try:
        root = ET.fromstring(request.body)  # noqa: S314 - the caller's own request
    except ET.ParseError:
        return [Check("s3:DeleteObject", _object_arn(bucket, "*"))]
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] != "Object":
            continue
        fields = {child.tag.rsplit("}", 1)[-1]: child.text or "" for child in element}
        action = "s3:DeleteObjectVersion" if fields.get("VersionId") else "s3:DeleteObject"
        found.append(Check(action, _object_arn(bucket, fields.get("Key", ""))))
    return found


@row("s3", "CopyObject", "UploadPartCopy")
def _s3_copy(request: ApiRequest, _: Scope) -> list[Check]:
    source = unquote(request.headers.get("x-amz-copy-source", "")).lstrip("/")
    source_path, _mark, source_query = source.partition("?")
    source_bucket, _slash, source_key = source_path.partition("/")
    read = "s3:GetObjectVersion" if "versionId=" in source_query else "s3:GetObject"
    return [
        Check(read, _object_arn(source_bucket, source_key)),
        Check("s3:PutObject", _object(request), _s3_write_context(request)),
    ]


@row("s3", "GetObjectTagging")
def _s3_get_tags(request: ApiRequest, _: Scope) -> list[Check]:
    return [Check(_versioned(request, "s3:GetObjectTagging"), _object(request))]


@row("s3", "PutObjectTagging")
def _s3_put_tags(request: ApiRequest, _: Scope) -> list[Check]:
    return [Check(_versioned(request, "s3:PutObjectTagging"), _object(request))]


@row("s3", "ListObjectsV2", "ListObjects", "HeadBucket")
def _s3_list(request: ApiRequest, _: Scope) -> list[Check]:
    # Listing is an action on the bucket, not on the objects; HeadBucket is s3:ListBucket too.
    context = {
        f"s3:{name}": request.query[name]
        for name in ("prefix", "delimiter", "max-keys")
        if name in request.query
    }
    return [Check("s3:ListBucket", _bucket_arn(request.params.get("Bucket", "")), context)]


@row("s3", "ListObjectVersions")
def _s3_list_versions(request: ApiRequest, _: Scope) -> list[Check]:
    return [Check("s3:ListBucketVersions", _bucket_arn(request.params.get("Bucket", "")))]


@row("s3", "ListMultipartUploads")
def _s3_list_uploads(request: ApiRequest, _: Scope) -> list[Check]:
    return [Check("s3:ListBucketMultipartUploads", _bucket_arn(request.params.get("Bucket", "")))]


@row("s3", "GetBucketLocation", "GetBucketVersioning", "GetBucketNotificationConfiguration")
def _s3_bucket_read(request: ApiRequest, _: Scope) -> list[Check]:
    action = {
        "GetBucketLocation": "s3:GetBucketLocation",
        "GetBucketVersioning": "s3:GetBucketVersioning",
        "GetBucketNotificationConfiguration": "s3:GetBucketNotification",
    }[str(request.operation)]
    return [Check(action, _bucket_arn(request.params.get("Bucket", "")))]


@row("s3", "ListBuckets")
def _s3_list_buckets(_: ApiRequest, __: Scope) -> list[Check]:
    return [Check("s3:ListAllMyBuckets", ALL_RESOURCES)]


# -- DynamoDB and DynamoDB Streams ------------------------------------------------------------------------


def _table_arn(name_or_arn: str, scope: Scope) -> str:
    # Every table parameter also takes the table's ARN.
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    return f"arn:aws:dynamodb:{scope.region}:{scope.account}:table/{name_or_arn}"


def _table_or_index(request: ApiRequest, scope: Scope) -> str:
    table = _table_arn(str(request.params.get("TableName", "")), scope)
    index = request.params.get("IndexName")
    return f"{table}/index/{index}" if index else table


@row("dynamodb", "GetItem", "PutItem", "UpdateItem", "DeleteItem", "DescribeTable")
def _dynamodb_item(request: ApiRequest, scope: Scope) -> list[Check]:
    return [
        Check(f"dynamodb:{request.operation}", _table_arn(str(request.params.get("TableName", "")), scope))
    ]


@row("dynamodb", "Query", "Scan")
def _dynamodb_read_many(request: ApiRequest, scope: Scope) -> list[Check]:
    # On an index, the action is authorized on the index's ARN (table/T/index/I), not the table's.
    return [Check(f"dynamodb:{request.operation}", _table_or_index(request, scope))]


@row("dynamodb", "BatchGetItem", "BatchWriteItem")
def _dynamodb_batch(request: ApiRequest, scope: Scope) -> list[Check]:
    tables = request.params.get("RequestItems") or {}
    return [Check(f"dynamodb:{request.operation}", _table_arn(str(table), scope)) for table in tables]


_TRANSACT_ACTIONS = {
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "Get": "dynamodb:GetItem",
}


@row("dynamodb", "TransactWriteItems", "TransactGetItems")
def _dynamodb_transact(request: ApiRequest, scope: Scope) -> list[Check]:
    # Each item of a transaction needs its own action on its own table.
    found = []
    for item in request.params.get("TransactItems") or []:
        for kind, body in (item or {}).items():
            if kind in _TRANSACT_ACTIONS and isinstance(body, Mapping):
                found.append(
                    Check(_TRANSACT_ACTIONS[kind], _table_arn(str(body.get("TableName", "")), scope))
                )
    return found


@row("dynamodb", "ListTables")
def _dynamodb_list_tables(_: ApiRequest, __: Scope) -> list[Check]:
    return [Check("dynamodb:ListTables", ALL_RESOURCES)]


@row("dynamodbstreams", "DescribeStream", "GetShardIterator")
def _streams_stream(request: ApiRequest, _: Scope) -> list[Check]:
    return [Check(f"dynamodb:{request.operation}", str(request.params.get("StreamArn", "")))]


@row("dynamodbstreams", "GetRecords")
def _streams_records(request: ApiRequest, _: Scope) -> list[Check]:
    # A shard iterator is `STREAM_ARN|...` (moto's, like DynamoDB's): the action is on the stream.
    iterator = str(request.params.get("ShardIterator", ""))
    return [Check("dynamodb:GetRecords", iterator.split("|", 1)[0])]


@row("dynamodbstreams", "ListStreams")
def _streams_list(_: ApiRequest, __: Scope) -> list[Check]:
    return [Check("dynamodb:ListStreams", ALL_RESOURCES)]


# -- SQS --------------------------------------------------------------------------------------------------


def _queue_arn(url: str, scope: Scope) -> str:
    # http://HOST/ACCOUNT/NAME (moto and AWS alike); the region is the request's.
    parts = [part for part in urlsplit(url).path.split("/") if part]
    account, name = (parts[-2], parts[-1]) if len(parts) >= 2 else (scope.account, parts[-1] if parts else "")
    return f"arn:aws:sqs:{scope.region}:{account}:{name}"


_SQS_ACTIONS = {
    "SendMessage": "sqs:SendMessage",
    "SendMessageBatch": "sqs:SendMessage",
    "ReceiveMessage": "sqs:ReceiveMessage",
    "DeleteMessage": "sqs:DeleteMessage",
    "DeleteMessageBatch": "sqs:DeleteMessage",
    "ChangeMessageVisibility": "sqs:ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "GetQueueAttributes": "sqs:GetQueueAttributes",
    "SetQueueAttributes": "sqs:SetQueueAttributes",
    "PurgeQueue": "sqs:PurgeQueue",
    "ListDeadLetterSourceQueues": "sqs:ListDeadLetterSourceQueues",
    "ListQueueTags": "sqs:ListQueueTags",
}


@row("sqs", *_SQS_ACTIONS)
def _sqs_queue(request: ApiRequest, scope: Scope) -> list[Check]:
    return [
        Check(
            _SQS_ACTIONS[str(request.operation)], _queue_arn(str(request.params.get("QueueUrl", "")), scope)
        )
    ]


@row("sqs", "GetQueueUrl")
def _sqs_queue_url(request: ApiRequest, scope: Scope) -> list[Check]:
    account = str(request.params.get("QueueOwnerAWSAccountId") or scope.account)
    name = str(request.params.get("QueueName", ""))
    return [Check("sqs:GetQueueUrl", f"arn:aws:sqs:{scope.region}:{account}:{name}")]


@row("sqs", "ListQueues")
def _sqs_list(_: ApiRequest, __: Scope) -> list[Check]:
    return [Check("sqs:ListQueues", ALL_RESOURCES)]


@row("sqs", "StartMessageMoveTask")
def _sqs_move(request: ApiRequest, _: Scope) -> list[Check]:
    return [Check("sqs:StartMessageMoveTask", str(request.params.get("SourceArn", "")))]


# -- SNS --------------------------------------------------------------------------------------------------


@row("sns", "Publish", "PublishBatch")
def _sns_publish(request: ApiRequest, _: Scope) -> list[Check]:
    target = request.params.get("TopicArn") or request.params.get("TargetArn")
    # A direct SMS (PhoneNumber) names no resource.
    return [Check("sns:Publish", str(target) if target else ALL_RESOURCES)]


@row("sns", "GetTopicAttributes", "Subscribe", "ListSubscriptionsByTopic")
def _sns_topic(request: ApiRequest, _: Scope) -> list[Check]:
    return [Check(f"sns:{request.operation}", str(request.params.get("TopicArn", "")))]


@row("sns", "ListTopics")
def _sns_list(_: ApiRequest, __: Scope) -> list[Check]:
    return [Check("sns:ListTopics", ALL_RESOURCES)]


# -- Lambda -----------------------------------------------------------------------------------------------

_FUNCTION_ARN = re.compile(
    r"^(?:arn:[^:]+:lambda:([^:]+):)?(?:(\d{12}):)?(?:function:)?([^:]+)(?::([^:]+))?$"
)


def _function_arn(request: ApiRequest, scope: Scope) -> str:
    """The ARN the call names: qualified when it names a version or alias (in the name or `Qualifier`).
    A grant on `function:NAME` covers the unqualified function only; `function:NAME:*` the qualified ones."""
    name = str(request.params.get("FunctionName", ""))
    found = _FUNCTION_ARN.match(name)
    if found is None:
        return name
    region, account, function, qualifier = found.groups()
    qualifier = request.query.get("Qualifier") or qualifier
    arn = f"arn:aws:lambda:{region or scope.region}:{account or scope.account}:function:{function}"
    return f"{arn}:{qualifier}" if qualifier else arn


@row("lambda", "Invoke", "InvokeAsync", "InvokeWithResponseStream")
def _lambda_invoke(request: ApiRequest, scope: Scope) -> list[Check]:
    return [Check("lambda:InvokeFunction", _function_arn(request, scope))]


@row("lambda", "GetFunction", "GetFunctionConfiguration", "ListVersionsByFunction", "GetPolicy")
def _lambda_read(request: ApiRequest, scope: Scope) -> list[Check]:
    return [Check(f"lambda:{request.operation}", _function_arn(request, scope))]


@row("lambda", "ListFunctions", "ListEventSourceMappings")
def _lambda_list(request: ApiRequest, _: Scope) -> list[Check]:
    return [Check(f"lambda:{request.operation}", ALL_RESOURCES)]


# -- Step Functions ---------------------------------------------------------------------------------------


@row("stepfunctions", "StartExecution", "StartSyncExecution", "DescribeStateMachine", "ListExecutions")
def _sfn_machine(request: ApiRequest, _: Scope) -> list[Check]:
    # On the ARN as given: a version (`stateMachine:NAME:3`) or alias ARN is its own resource, so a grant on
    # `stateMachine:NAME` alone does not start a version.
    return [Check(f"states:{request.operation}", str(request.params.get("stateMachineArn", "")))]


@row(
    "stepfunctions",
    "DescribeExecution",
    "StopExecution",
    "GetExecutionHistory",
    "DescribeStateMachineForExecution",
    "RedriveExecution",
)
def _sfn_execution(request: ApiRequest, _: Scope) -> list[Check]:
    return [Check(f"states:{request.operation}", str(request.params.get("executionArn", "")))]


@row("stepfunctions", "SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat", "ListStateMachines")
def _sfn_unscoped(request: ApiRequest, _: Scope) -> list[Check]:
    # A task token names no resource an ARN could match here: these are granted on `*`.
    return [Check(f"states:{request.operation}", ALL_RESOURCES)]


# -- EventBridge ------------------------------------------------------------------------------------------


def _bus_arn(name_or_arn: str, scope: Scope) -> str:
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    return f"arn:aws:events:{scope.region}:{scope.account}:event-bus/{name_or_arn or 'default'}"


@row("events", "PutEvents")
def _events_put(request: ApiRequest, scope: Scope) -> list[Check]:
    # Per entry: each names its bus, and the condition keys events:source and events:detail-type are its own.
    return [
        Check(
            "events:PutEvents",
            _bus_arn(str(entry.get("EventBusName") or ""), scope),
            {
                "events:source": str(entry.get("Source", "")),
                "events:detail-type": str(entry.get("DetailType", "")),
            },
        )
        for entry in request.params.get("Entries") or []
        if isinstance(entry, Mapping)
    ]


@row("events", "DescribeEventBus")
def _events_bus(request: ApiRequest, scope: Scope) -> list[Check]:
    return [Check("events:DescribeEventBus", _bus_arn(str(request.params.get("Name") or ""), scope))]


# -- CloudWatch, CloudWatch Logs, X-Ray, STS --------------------------------------------------------------


@row("cloudwatch", "PutMetricData")
def _cloudwatch_put(request: ApiRequest, _: Scope) -> list[Check]:
    # No resource-level permissions: `*`, narrowed only by the cloudwatch:namespace condition key.
    return [
        Check(
            "cloudwatch:PutMetricData",
            ALL_RESOURCES,
            {"cloudwatch:namespace": str(request.params.get("Namespace", ""))},
        )
    ]


@row("cloudwatch", "GetMetricStatistics", "GetMetricData", "ListMetrics")
def _cloudwatch_read(request: ApiRequest, _: Scope) -> list[Check]:
    return [Check(f"cloudwatch:{request.operation}", ALL_RESOURCES)]


def _log_group_arn(name: str, scope: Scope) -> str:
    return f"arn:aws:logs:{scope.region}:{scope.account}:log-group:{name}"


@row("logs", "CreateLogGroup")
def _logs_group(request: ApiRequest, scope: Scope) -> list[Check]:
    return [Check("logs:CreateLogGroup", _log_group_arn(str(request.params.get("logGroupName", "")), scope))]


@row("logs", "CreateLogStream", "PutLogEvents")
def _logs_stream(request: ApiRequest, scope: Scope) -> list[Check]:
    group = _log_group_arn(str(request.params.get("logGroupName", "")), scope)
    stream = str(request.params.get("logStreamName", ""))
    return [Check(f"logs:{request.operation}", f"{group}:log-stream:{stream}")]


@row("xray", "PutTraceSegments", "PutTelemetryRecords", "GetSamplingRules", "GetSamplingTargets")
def _xray(request: ApiRequest, _: Scope) -> list[Check]:
    return [Check(f"xray:{request.operation}", ALL_RESOURCES)]


@row("sts", "GetCallerIdentity")
def _sts_identity(_: ApiRequest, __: Scope) -> list[Check]:
    # Needs no permission: AWS answers it even when an explicit Deny covers every action.
    return []


@row("sts", "AssumeRole")
def _sts_assume(request: ApiRequest, _: Scope) -> list[Check]:
    # The target role's trust policy is the resource policy of this check.
    return [Check("sts:AssumeRole", str(request.params.get("RoleArn", "")))]
