"""moto's service list read once (localcloud.core.service_lookup), on an in-process moto server: requests to
several services reach their own backends and the package directory is listed once."""

from __future__ import annotations

from moto import backends

from localcloud.core import service_lookup
from tests.localcloud.support import client, moto_server


def test_requests_find_their_services_and_the_list_is_read_once() -> None:
    listed: list[int] = []
    moto_listing = backends.list_of_moto_modules

    def counting() -> list[str]:
        listed.append(1)
        return list(moto_listing())

    undo = service_lookup.install(modules=counting)
    try:
        with moto_server() as endpoint:
            sqs, ddb, s3 = client(endpoint, "sqs"), client(endpoint, "dynamodb"), client(endpoint, "s3")
            for round_ in range(3):
                sqs.create_queue(QueueName=f"q{round_}")
                s3.create_bucket(Bucket=f"bucket-{round_}")
                ddb.create_table(
                    TableName=f"lookup-{round_}",
                    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                    BillingMode="PAY_PER_REQUEST",
                )
            assert (
                len([u for u in sqs.list_queues()["QueueUrls"] if u.rsplit("/", 1)[1] in {"q0", "q1", "q2"}])
                == 3
            )
            assert {b["Name"] for b in s3.list_buckets()["Buckets"]} >= {"bucket-0", "bucket-1", "bucket-2"}
            assert {"lookup-0", "lookup-1", "lookup-2"} <= set(ddb.list_tables()["TableNames"])
    finally:
        undo()
    assert backends.list_of_moto_modules is moto_listing
    assert len(listed) == 1  # each of the twelve requests listed the directory without the install
