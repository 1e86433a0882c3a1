"""``DynamoDBJobStore``: the job store on DynamoDB, same semantics as SQLite.

Items of one table (partition key ``pk``, sort key ``sk``):

* head of a partition  ``pk=<asset>#<partition>``, ``sk=head``: ``last_attempt``
  and, while an attempt is in flight, ``in_flight_job``;
* one attempt          ``pk=<asset>#<partition>``, ``sk=attempt#000001``: the
  JobRecord fields; ``in_flight="1"`` while in flight (a sparse index lists
  in-flight jobs); ``expires_at`` (TTL) once terminal;
* a job name           ``pk=job#<name>``, ``sk=job``: points at its attempt, and
  makes job names unique (written in the same transaction as the attempt);
* a run's owner        ``pk=owner#<run id>``, ``sk=owner``: host, pid, process
  start and ``heartbeat_at`` (renewed with a conditional update), TTL as above.

Creating an attempt writes head and attempt in one transaction conditioned on
the head (no attempt in flight, attempt number unchanged), so two submitters
racing for one partition cannot both win. Every status change is conditioned on
the status it read; reaching a terminal status clears the head in the same
transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import Field, PrivateAttr

from resources.job_status import IN_PROGRESS, TERMINAL
from resources.job_store import (
    PENDING,
    AttemptExistsError,
    IllegalTransitionError,
    JobInFlightError,
    JobRecord,
    JobStore,
    JobStoreError,
    OwnerRecord,
    check_transition,
)
from resources.liveness import ProcessIdentity

HEAD = "head"
IN_FLIGHT_INDEX = "in_flight-index"
_RECORD_FIELDS = tuple(JobRecord.__dataclass_fields__)


class DynamoDBJobStore(JobStore):
    """Job store in a DynamoDB table (create it with ``create_job_table``)."""

    table_name: str = Field(description="DynamoDB table of the job store.")
    region_name: str | None = Field(default=None, description="AWS region of the table.")
    endpoint_url: str | None = Field(
        default=None, description="Custom DynamoDB endpoint (tests, DynamoDB Local)."
    )
    max_attempts: int = Field(
        default=10, description="botocore standard-mode retry attempts per request."
    )
    retention_days: int = Field(
        default=180, description="Ended attempts expire (DynamoDB TTL) after this many days."
    )
    _client: Any = PrivateAttr(default=None)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.client(
                "dynamodb", region_name=self.region_name, endpoint_url=self.endpoint_url,
                config=Config(retries={"mode": "standard", "max_attempts": self.max_attempts}),
            )
        return self._client

    # --- reads ----------------------------------------------------------------------

    def _head(self, pk: str) -> dict:
        item = self.client.get_item(TableName=self.table_name, ConsistentRead=True,
                                    Key={"pk": {"S": pk}, "sk": {"S": HEAD}}).get("Item")
        return _plain(item) if item else {}

    def _attempt_item(self, pk: str, attempt: int) -> JobRecord | None:
        return self._item_at(pk, _sk(attempt))

    def _item_at(self, pk: str, sk: str) -> JobRecord | None:
        item = self.client.get_item(TableName=self.table_name, ConsistentRead=True,
                                    Key={"pk": {"S": pk}, "sk": {"S": sk}}).get("Item")
        return _record(_plain(item)) if item else None

    def get(self, job_name: str) -> JobRecord | None:
        name_item = self.client.get_item(TableName=self.table_name, ConsistentRead=True,
                                         Key=_name_key(job_name)).get("Item")
        if not name_item:
            return None
        return self._item_at(name_item["target_pk"]["S"], name_item["target_sk"]["S"])

    def attempts(self, asset_key: str, partition_key: str) -> list[JobRecord]:
        items = _query_all(self.client, TableName=self.table_name, ConsistentRead=True,
                           KeyConditionExpression="pk = :pk AND begins_with(sk, :a)",
                           ExpressionAttributeValues={":pk": {"S": _pk(asset_key, partition_key)},
                                                      ":a": {"S": "attempt#"}})
        now = time.time()  # DynamoDB deletes expired items lazily (moto never): filter here
        records = [_plain(i) for i in items]
        return [_record(r) for r in records if r.get("expires_at", now + 1) > now]

    def list_in_flight(self) -> list[JobRecord]:
        items = _query_all(self.client, TableName=self.table_name, IndexName=IN_FLIGHT_INDEX,
                           KeyConditionExpression="in_flight = :one",
                           ExpressionAttributeValues={":one": {"S": "1"}})
        records = [self._item_at(i["pk"]["S"], i["sk"]["S"]) for i in items]
        return sorted((r for r in records if r and r.in_flight), key=lambda r: r.created_at)

    # --- writes ---------------------------------------------------------------------

    def create_attempt(self, asset_key: str, partition_key: str,
                       job_name_for: Callable[[int], str], run_id: str,
                       backend: str) -> JobRecord:
        pk = _pk(asset_key, partition_key)
        head = self._head(pk)
        self._raise_if_in_flight(pk, head)
        last = int(head.get("last_attempt", 0))
        now = time.time()
        record = JobRecord(asset_key, partition_key, last + 1, job_name_for(last + 1), PENDING,
                           run_id, backend, now, now)
        head_condition = (
            "attribute_not_exists(pk)" if not head
            else "last_attempt = :last AND attribute_not_exists(in_flight_job)"
        )
        head_update: dict = {
            "TableName": self.table_name,
            "Key": {"pk": {"S": pk}, "sk": {"S": HEAD}},
            "UpdateExpression": "SET last_attempt = :next, in_flight_job = :job",
            "ConditionExpression": head_condition,
            "ExpressionAttributeValues": {":next": {"N": str(record.attempt)},
                                          ":job": {"S": record.job_name}},
        }
        if head:
            head_update["ExpressionAttributeValues"][":last"] = {"N": str(last)}
        item = _item(record) | {"pk": {"S": pk}, "sk": {"S": _sk(record.attempt)},
                                "in_flight": {"S": "1"}}
        try:
            self.client.transact_write_items(TransactItems=[
                {"Update": head_update},
                {"Put": {"TableName": self.table_name, "Item": item,
                         "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Put": {"TableName": self.table_name,
                         "Item": _name_key(record.job_name) | {
                             "target_pk": {"S": pk}, "target_sk": {"S": _sk(record.attempt)}},
                         "ConditionExpression": "attribute_not_exists(pk)"}},
            ])
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            self._raise_if_in_flight(pk, self._head(pk))
            raise AttemptExistsError(
                f"attempt {record.attempt} of {asset_key}[{partition_key}] or job name "
                f"{record.job_name} is taken (a concurrent submitter, or a name in use)"
            ) from exc
        return record

    def _raise_if_in_flight(self, pk: str, head: dict) -> None:
        job = head.get("in_flight_job")
        if job:
            existing = self._attempt_item(pk, int(head["last_attempt"]))
            if existing is None:
                raise JobStoreError(f"head of {pk} names job {job} but its attempt is missing")
            raise JobInFlightError(existing)

    def transition(self, job_name: str, new_status: str, *, expected: str | None = None,
                   failure_reason: str | None = None) -> JobRecord:
        record = self.get(job_name)
        if record is None:
            raise JobStoreError(f"no job named {job_name} in the job store")
        check_transition(record, new_status, expected)
        now = time.time()
        pk = _pk(record.asset_key, record.partition_key)
        started = record.started_at if record.started_at is not None else (
            now if new_status == IN_PROGRESS else None)
        ended = now if new_status in TERMINAL else record.ended_at
        reason = failure_reason or record.failure_reason
        names = {"#status": "status"}
        values: dict = {":new": {"S": new_status}, ":old": {"S": record.status},
                        ":now": {"N": repr(now)}}
        sets = ["#status = :new", "updated_at = :now"]
        for name, value in (("started_at", started), ("ended_at", ended)):
            if value is not None:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = {"N": repr(value)}
        if reason is not None:
            sets.append("failure_reason = :reason")
            values[":reason"] = {"S": reason}
        update = f"SET {', '.join(sets)}"
        if new_status in TERMINAL:
            values[":expires"] = {"N": str(int(now + self.retention_days * 86400))}
            update = f"SET {', '.join([*sets, 'expires_at = :expires'])} REMOVE in_flight"
        attempt_update = {
            "TableName": self.table_name,
            "Key": {"pk": {"S": pk}, "sk": {"S": _sk(record.attempt)}},
            "UpdateExpression": update,
            "ConditionExpression": "#status = :old",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        try:
            if new_status in TERMINAL:
                self.client.transact_write_items(TransactItems=[
                    {"Update": attempt_update},
                    {"Update": {
                        "TableName": self.table_name,
                        "Key": {"pk": {"S": pk}, "sk": {"S": HEAD}},
                        "UpdateExpression": "REMOVE in_flight_job",
                        "ConditionExpression": "in_flight_job = :job",
                        "ExpressionAttributeValues": {":job": {"S": job_name}},
                    }},
                ])
            else:
                self.client.update_item(**attempt_update)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("ConditionalCheckFailedException",
                                                     "TransactionCanceledException"):
                raise
            raise IllegalTransitionError(
                f"job {job_name} changed concurrently (was {record.status}); not moved to "
                f"{new_status}"
            ) from exc
        return JobRecord(**{**{f: getattr(record, f) for f in _RECORD_FIELDS},
                            "status": new_status, "updated_at": now, "started_at": started,
                            "ended_at": ended, "failure_reason": reason})

    def take_over(self, job_name: str, run_id: str, expected_run_id: str) -> JobRecord:
        record = self.get(job_name)
        if record is None or not record.in_flight or record.run_id != expected_run_id:
            raise IllegalTransitionError(
                f"job {job_name} is no longer in flight under run {expected_run_id}")
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": _pk(record.asset_key, record.partition_key)},
                     "sk": {"S": _sk(record.attempt)}},
                UpdateExpression="SET run_id = :new, updated_at = :now",
                ConditionExpression="run_id = :old AND in_flight = :one",
                ExpressionAttributeValues={":new": {"S": run_id}, ":old": {"S": expected_run_id},
                                           ":one": {"S": "1"}, ":now": {"N": repr(time.time())}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            raise IllegalTransitionError(
                f"job {job_name} ended or was taken over by another run meanwhile") from exc
        return self.get(job_name) or record

    # --- owners ---------------------------------------------------------------------

    def register_owner(self, run_id: str, identity: ProcessIdentity) -> OwnerRecord:
        owner = OwnerRecord(run_id, identity.host, identity.pid, identity.started_at,
                            time.time())
        self.client.put_item(TableName=self.table_name, Item=_owner_key(run_id) | {
            "host": {"S": owner.host}, "pid": {"N": str(owner.pid)},
            "process_started_at": {"N": repr(owner.process_started_at)},
            "heartbeat_at": {"N": repr(owner.heartbeat_at)},
            "expires_at": {"N": str(int(owner.heartbeat_at + self.retention_days * 86400))},
        })
        return owner

    def heartbeat(self, run_id: str) -> None:
        try:
            self.client.update_item(
                TableName=self.table_name, Key=_owner_key(run_id),
                UpdateExpression="SET heartbeat_at = :now",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":now": {"N": repr(time.time())}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            raise JobStoreError(f"run {run_id} has no owner record to renew") from exc

    def owner(self, run_id: str) -> OwnerRecord | None:
        item = self.client.get_item(TableName=self.table_name, ConsistentRead=True,
                                    Key=_owner_key(run_id)).get("Item")
        if not item:
            return None
        plain = _plain(item)
        return OwnerRecord(run_id, plain["host"], int(plain["pid"]),
                           float(plain["process_started_at"]), float(plain["heartbeat_at"]))


def create_job_table(table_name: str, client: Any, wait: bool = True) -> None:
    """Create the job store table (for dev accounts and tests; production expects it).

    On-demand capacity, server-side encryption, a TTL on ``expires_at`` and a
    sparse index of in-flight attempts.
    """
    client.create_table(
        TableName=table_name,
        BillingMode="PAY_PER_REQUEST",
        SSESpecification={"Enabled": True},
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "in_flight", "AttributeType": "S"},
            {"AttributeName": "created_at", "AttributeType": "N"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {"IndexName": IN_FLIGHT_INDEX,
             "KeySchema": [{"AttributeName": "in_flight", "KeyType": "HASH"},
                           {"AttributeName": "created_at", "KeyType": "RANGE"}],
             "Projection": {"ProjectionType": "KEYS_ONLY"}},
        ],
    )
    if wait:
        client.get_waiter("table_exists").wait(TableName=table_name)
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
    )


def _pk(asset_key: str, partition_key: str) -> str:
    return f"{asset_key}#{partition_key}"


def _name_key(job_name: str) -> dict:
    return {"pk": {"S": f"job#{job_name}"}, "sk": {"S": "job"}}


def _owner_key(run_id: str) -> dict:
    return {"pk": {"S": f"owner#{run_id}"}, "sk": {"S": "owner"}}


def _sk(attempt: int) -> str:
    return f"attempt#{attempt:06d}"


def _item(record: JobRecord) -> dict:
    item = {}
    for name in _RECORD_FIELDS:
        value = getattr(record, name)
        if value is None:
            continue
        item[name] = {"N": repr(value) if isinstance(value, float) else str(value)} \
            if isinstance(value, int | float) else {"S": value}
    return item


def _plain(item: dict) -> dict:
    plain = {}
    for name, typed in item.items():
        (kind, value), = typed.items()
        plain[name] = Decimal(value) if kind == "N" else value
    return plain


def _record(plain: dict) -> JobRecord:
    values = {f: plain.get(f) for f in _RECORD_FIELDS}
    values["attempt"] = int(values["attempt"])
    for name in ("created_at", "updated_at", "started_at", "ended_at"):
        if values[name] is not None:
            values[name] = float(values[name])
    return JobRecord(**values)


def _query_all(client: Any, **kwargs) -> list[dict]:
    paginator = client.get_paginator("query")
    return [item for page in paginator.paginate(**kwargs) for item in page["Items"]]



def main(argv: list[str] | None = None) -> int:
    """``python -m resources.dynamodb_job_store --table NAME [--region R]``: create the table."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m resources.dynamodb_job_store",
                                     description="Create the job store's DynamoDB table.")
    parser.add_argument("--table", required=True, help="table name")
    parser.add_argument("--region", default=None, help="AWS region (default: boto3's)")
    parser.add_argument("--endpoint-url", default=None, help="custom DynamoDB endpoint")
    args = parser.parse_args(argv)
    client = boto3.client("dynamodb", region_name=args.region, endpoint_url=args.endpoint_url)
    create_job_table(args.table, client)
    print(f"created DynamoDB table {args.table}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
