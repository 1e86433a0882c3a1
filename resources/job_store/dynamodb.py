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
  start and ``heartbeat_at`` (renewed with a conditional update), TTL as above;
* an instance pool     ``pk=instances#<type>``, ``sk=pool``: ``in_use`` (instances
  held by admitted jobs), ``version`` (bumped by every admission and every release
  of held instances), ``next_ticket`` (the queue's counter) and ``live``, a map
  ``t<ticket>`` -> {``count``, ``renewed_at``[, ``admitted_at``]} of the requests
  waiting or holding instances (removed on release). One strongly consistent read
  of this item is all a waiting step's poll costs; at about 60 bytes a request
  the 400 KB item limit allows thousands of live requests per type;
* a request's timeline ``pk=instances#<type>``, ``sk=ticket#<ticket>``: the
  Reservation fields (requested, admitted, released, why); TTL once released;
* a job's reservation  ``pk=reservation#<job name>``, ``sk=reservation``: points
  at its type and ticket (one reservation per job); TTL once released.

Creating an attempt writes head and attempt in one transaction conditioned on
the head (no attempt in flight, attempt number unchanged), so two submitters
racing for one partition cannot both win. Every status change is conditioned on
the status it read; reaching a terminal status clears the head in the same
transaction, then releases the job's instance reservation (idempotent; the
reaper releases what a crash between the two left behind).

Admission reads the pool item, decides by the fairness rule
(``resources.job_store.admission``), and commits in one transaction conditioned
on the pool's ``version`` being the one it read, on ``in_use <= quota - count``
and on the request still waiting: a decision made on a stale view fails and is
made again, so two processes never both take the last instances. A release
removes the request from ``live`` on the condition that it is still in the state
it read (waiting, or held), so an admission and a release of the same ticket
never both count.
"""

from __future__ import annotations

import time
import typing
from collections.abc import Callable, Collection
from dataclasses import dataclass, fields
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import Field, PrivateAttr

from resources.job_status import TERMINAL
from resources.job_store.admission import (
    Admission,
    Reservation,
    ReservationReleasedError,
    check_request,
    decide,
)
from resources.job_store.base import JobStore
from resources.job_store.records import (
    PENDING,
    AttemptExistsError,
    IllegalTransitionError,
    JobInFlightError,
    JobRecord,
    JobStoreError,
    OwnerRecord,
    check_reservation,
    check_transition,
    transitioned,
)
from resources.liveness import ProcessIdentity

HEAD = "head"
IN_FLIGHT_INDEX = "in_flight-index"
POOL = "pool"
# optimistic admissions that lost a race are decided again this often per call
_ADMISSION_TRIES = 20
# queueing races only with other first requests of the same type: one wins each round
_ENQUEUE_TRIES = 200


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
    _tickets: dict[str, tuple[str, int]] = PrivateAttr(default_factory=dict)

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
        return _from_plain(JobRecord, _plain(item)) if item else None

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
        return [_from_plain(JobRecord, r) for r in records
                if r.get("expires_at", now + 1) > now]

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
        moved = transitioned(record, new_status, time.time(), failure_reason)
        try:
            self._write_transition(record, moved)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("ConditionalCheckFailedException",
                                                     "TransactionCanceledException"):
                raise
            raise IllegalTransitionError(
                f"job {job_name} changed concurrently (was {record.status}); not moved to "
                f"{new_status}"
            ) from exc
        if new_status in TERMINAL:
            self.release_instances(job_name, f"job {new_status}")
        return moved

    def _write_transition(self, record: JobRecord, moved: JobRecord) -> None:
        """Write the move, conditioned on the status read; a move to a terminal status
        also clears the partition's head, in the same transaction."""
        attempt_update = self._attempt_update(record, moved)
        if moved.status not in TERMINAL:
            self.client.update_item(**attempt_update)
            return
        self.client.transact_write_items(TransactItems=[
            {"Update": attempt_update},
            {"Update": {
                "TableName": self.table_name,
                "Key": {"pk": {"S": _pk(record.asset_key, record.partition_key)},
                        "sk": {"S": HEAD}},
                "UpdateExpression": "REMOVE in_flight_job",
                "ConditionExpression": "in_flight_job = :job",
                "ExpressionAttributeValues": {":job": {"S": record.job_name}},
            }},
        ])

    def _attempt_update(self, record: JobRecord, moved: JobRecord) -> dict:
        """The attempt item's update from ``record`` to ``moved``: a terminal status
        leaves the in-flight index and starts the item's TTL."""
        now = moved.updated_at
        values: dict = {":new": {"S": moved.status}, ":old": {"S": record.status},
                        ":now": {"N": repr(now)}}
        sets = ["#status = :new", "updated_at = :now"]
        for name, value in (("started_at", moved.started_at), ("ended_at", moved.ended_at)):
            if value is not None:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = {"N": repr(value)}
        if moved.failure_reason is not None:
            sets.append("failure_reason = :reason")
            values[":reason"] = {"S": moved.failure_reason}
        update = f"SET {', '.join(sets)}"
        if moved.status in TERMINAL:
            values[":expires"] = {"N": str(int(now + self.retention_days * 86400))}
            update = f"SET {', '.join([*sets, 'expires_at = :expires'])} REMOVE in_flight"
        return {
            "TableName": self.table_name,
            "Key": {"pk": {"S": _pk(record.asset_key, record.partition_key)},
                    "sk": {"S": _sk(record.attempt)}},
            "UpdateExpression": update,
            "ConditionExpression": "#status = :old",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": values,
        }

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
        self.client.put_item(TableName=self.table_name, Item=(
            _owner_key(run_id) | _item(owner, leave_out={"run_id"})  # the key names the run
            | {"expires_at": {"N": str(int(owner.heartbeat_at + self.retention_days * 86400))}}
        ))
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
        return _from_plain(OwnerRecord, _plain(item) | {"run_id": run_id})

    # --- instance admission ---------------------------------------------------------

    def reserve_instances(self, job_name: str, run_id: str, instance_type: str, count: int,
                          quota: int) -> Admission:
        check_request(instance_type, count, quota)
        queued_type, ticket = self._ticket_of(job_name, run_id, instance_type, count, quota)
        admission = None
        for _ in range(_ADMISSION_TRIES):
            pool = self._pool(queued_type)
            mine = pool.live.get(ticket)
            if mine is None or int(mine["count"]) != count or queued_type != instance_type:
                # released, or asked differently: say which, from its timeline
                timeline = self._timeline(queued_type, ticket)
                if timeline is None:
                    raise JobStoreError(f"reservation of job {job_name} points at ticket "
                                        f"{ticket} of {queued_type}, which is missing")
                check_reservation(timeline, instance_type, count)
                raise ReservationReleasedError(
                    f"the instances of job {job_name} were released meanwhile; record a new "
                    "attempt to ask again")
            if "admitted_at" in mine:
                return Admission(True, pool.in_use, 0, instance_type, count, quota)
            now = time.time()  # read after the pool: admissions stamp after what they saw
            admission = decide(ticket, count, quota, instance_type, pool.in_use,
                               pool.waiting(), now, self.lease_seconds)
            if not admission.admitted:
                if now - mine["renewed_at"] > self.lease_seconds / 4:
                    self._renew(instance_type, ticket, now, job_name)
                return admission
            try:
                self.client.transact_write_items(TransactItems=[
                    {"Update": {
                        "TableName": self.table_name, "Key": _pool_key(instance_type),
                        "UpdateExpression": "SET in_use = in_use + :count, version = version "
                                            "+ :one, live.#t.admitted_at = :now",
                        "ConditionExpression": "version = :version AND in_use <= :limit AND "
                                               "attribute_exists(live.#t) AND "
                                               "attribute_not_exists(live.#t.admitted_at)",
                        "ExpressionAttributeNames": {"#t": _live_key(ticket)},
                        "ExpressionAttributeValues": {
                            ":count": {"N": str(count)}, ":one": {"N": "1"},
                            ":now": {"N": repr(now)}, ":version": {"N": str(pool.version)},
                            ":limit": {"N": str(quota - count)}},
                    }},
                    {"Update": {
                        "TableName": self.table_name,
                        "Key": _timeline_key(instance_type, ticket),
                        "UpdateExpression": "SET admitted_at = :now, renewed_at = :now",
                        "ExpressionAttributeValues": {":now": {"N": repr(now)}},
                    }},
                ])
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                continue  # the pool changed since it was read: decide again
            return admission
        # every try lost a race to other admissions or releases: the queue moved, and
        # the caller asks again at its next poll
        return Admission(False, admission.in_use if admission else 0, 0, instance_type,
                         count, quota)

    def _ticket_of(self, job_name: str, run_id: str, instance_type: str, count: int,
                   quota: int) -> tuple[str, int]:
        """The job's (instance type, ticket), queueing it on its first request. A ticket
        never changes once written, so this process remembers it."""
        known = self._tickets.get(job_name)
        if known is not None:
            return known
        pointer = self._pointer(job_name)
        if pointer is None:
            self._enqueue(job_name, run_id, instance_type, count, quota)
            pointer = self._pointer(job_name)
            if pointer is None:
                raise JobStoreError(f"reservation of job {job_name} vanished after queueing")
        known = (pointer["instance_type"], int(pointer["ticket"]))
        self._tickets[job_name] = known
        return known

    def _enqueue(self, job_name: str, run_id: str, instance_type: str, count: int,
                 quota: int) -> None:
        """Queue the job's request as the type's next ticket, once per job.

        Pointer, timeline and the entry in the pool's ``live`` map are written in one
        transaction conditioned on the pool's ticket counter being the one read, so
        a ticket is in the queue the moment it exists and tickets enter the queue
        in their order (an older ticket is never invisible to a younger one's
        admission). A race with another enqueue is decided again.
        """
        for _ in range(_ENQUEUE_TRIES):
            item = self.client.get_item(TableName=self.table_name, ConsistentRead=True,
                                        Key=_pool_key(instance_type)).get("Item")
            last = int(item["next_ticket"]["N"]) if item else 0
            ticket = last + 1
            now = time.time()
            reservation = Reservation(job_name, run_id, instance_type, count, quota, ticket,
                                      now, now)
            entry = {"M": {"count": {"N": str(count)}, "renewed_at": {"N": repr(now)}}}
            if item:
                pool_update = {
                    "UpdateExpression": "SET next_ticket = :ticket, live.#t = :entry",
                    "ConditionExpression": "next_ticket = :last",
                    "ExpressionAttributeNames": {"#t": _live_key(ticket)},
                    "ExpressionAttributeValues": {":ticket": {"N": str(ticket)},
                                                  ":last": {"N": str(last)},
                                                  ":entry": entry},
                }
            else:  # the type's first request creates its pool
                pool_update = {
                    "UpdateExpression": "SET next_ticket = :ticket, in_use = :zero, "
                                        "version = :zero, live = :live",
                    "ConditionExpression": "attribute_not_exists(pk)",
                    "ExpressionAttributeValues": {
                        ":ticket": {"N": str(ticket)}, ":zero": {"N": "0"},
                        ":live": {"M": {_live_key(ticket): entry}}},
                }
            try:
                self.client.transact_write_items(TransactItems=[
                    {"Put": {"TableName": self.table_name,
                             "Item": _reservation_key(job_name) | {
                                 "instance_type": {"S": instance_type},
                                 "ticket": {"N": str(ticket)}},
                             "ConditionExpression": "attribute_not_exists(pk)"}},
                    {"Put": {"TableName": self.table_name,
                             "Item": _item(reservation)
                             | _timeline_key(instance_type, ticket)}},
                    {"Update": {"TableName": self.table_name,
                                "Key": _pool_key(instance_type), **pool_update}},
                ])
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                if self._pointer(job_name) is not None:
                    return  # a concurrent request of the same job queued it first
                continue  # another job took ticket ``ticket``: take the next one
            return
        raise JobStoreError(f"could not queue the request of job {job_name}: "
                            f"{_ENQUEUE_TRIES} tries lost races to other requests")

    def _renew(self, instance_type: str, ticket: int, now: float, job_name: str) -> None:
        """Keep a waiting ticket's lease (only while it is still live). Written at most
        every quarter lease, not at every poll: the lease is what it protects."""
        try:
            self.client.update_item(
                TableName=self.table_name, Key=_pool_key(instance_type),
                UpdateExpression="SET live.#t.renewed_at = :now",
                ConditionExpression="attribute_exists(live.#t)",
                ExpressionAttributeNames={"#t": _live_key(ticket)},
                ExpressionAttributeValues={":now": {"N": repr(now)}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            raise ReservationReleasedError(
                f"the instances of job {job_name} were released meanwhile; record a new "
                "attempt to ask again") from exc

    def release_instances(self, job_name: str, reason: str = "released"
                          ) -> Reservation | None:
        for _ in range(_ADMISSION_TRIES):
            pointer = self._pointer(job_name)
            if pointer is None:
                return None
            instance_type, ticket = pointer["instance_type"], int(pointer["ticket"])
            entry = self._pool(instance_type).live.get(ticket)
            if entry is None:  # released already
                return self._timeline(instance_type, ticket)
            held = "admitted_at" in entry
            now = time.time()
            expires = {"N": str(int(now + self.retention_days * 86400))}
            names = {"#t": _live_key(ticket)}
            if held:
                pool_update = {
                    "UpdateExpression": "SET in_use = in_use - :count, version = version + "
                                        ":one REMOVE live.#t",
                    "ConditionExpression": "attribute_exists(live.#t.admitted_at)",
                    "ExpressionAttributeValues": {":count": {"N": str(int(entry["count"]))},
                                                  ":one": {"N": "1"}},
                }
            else:
                pool_update = {
                    "UpdateExpression": "REMOVE live.#t",
                    "ConditionExpression": "attribute_exists(live.#t) AND "
                                           "attribute_not_exists(live.#t.admitted_at)",
                }
            try:
                self.client.transact_write_items(TransactItems=[
                    {"Update": {"TableName": self.table_name, "Key": _pool_key(instance_type),
                                "ExpressionAttributeNames": names, **pool_update}},
                    {"Update": {
                        "TableName": self.table_name,
                        "Key": _timeline_key(instance_type, ticket),
                        "UpdateExpression": "SET released_at = :now, release_reason = :why, "
                                            "expires_at = :expires",
                        "ExpressionAttributeValues": {":now": {"N": repr(now)},
                                                      ":why": {"S": reason},
                                                      ":expires": expires},
                    }},
                    {"Update": {
                        "TableName": self.table_name, "Key": _reservation_key(job_name),
                        "UpdateExpression": "SET expires_at = :expires",
                        "ExpressionAttributeValues": {":expires": expires},
                    }},
                ])
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                continue  # admitted or released concurrently: look again
            return self._timeline(instance_type, ticket)
        raise JobStoreError(f"could not release the instances of job {job_name}: it kept "
                            f"changing concurrently ({_ADMISSION_TRIES} tries)")

    def instances_in_use(self, instance_type: str) -> int:
        return self._pool(instance_type).in_use

    def reservation(self, job_name: str) -> Reservation | None:
        pointer = self._pointer(job_name)
        if pointer is None:
            return None
        return self._timeline(pointer["instance_type"], int(pointer["ticket"]))

    def reservations(self, instance_type: str, active_only: bool = False
                     ) -> list[Reservation]:
        if active_only:  # the pool's live map names them: no read of the history
            found = (self._timeline(instance_type, t)
                     for t in sorted(self._pool(instance_type).live))
            return [r for r in found if r is not None]
        items = _query_all(self.client, TableName=self.table_name, ConsistentRead=True,
                           KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                           ExpressionAttributeValues={":pk": {"S": _pool_pk(instance_type)},
                                                      ":prefix": {"S": "ticket#"}})
        return [_from_plain(Reservation, _plain(i)) for i in items]

    def _pool(self, instance_type: str) -> _Pool:
        item = self.client.get_item(TableName=self.table_name, ConsistentRead=True,
                                    Key=_pool_key(instance_type)).get("Item")
        return _Pool.from_item(item or {})

    def _pointer(self, job_name: str) -> dict | None:
        item = self.client.get_item(TableName=self.table_name, ConsistentRead=True,
                                    Key=_reservation_key(job_name)).get("Item")
        return _plain(item) if item else None

    def _timeline(self, instance_type: str, ticket: int) -> Reservation | None:
        item = self.client.get_item(TableName=self.table_name, ConsistentRead=True,
                                    Key=_timeline_key(instance_type, ticket)).get("Item")
        return _from_plain(Reservation, _plain(item)) if item else None


@dataclass(frozen=True)
class _Pool:
    """The pool item of an instance type: counters and the live requests by ticket."""

    in_use: int
    version: int
    live: dict[int, dict[str, float]]  # ticket -> count, renewed_at[, admitted_at]

    @classmethod
    def from_item(cls, item: dict) -> _Pool:
        plain = _plain(item)
        live = {int(key[1:]): {name: float(value) for name, value in entry.items()}
                for key, entry in plain.get("live", {}).items()}
        return cls(int(plain.get("in_use", 0)), int(plain.get("version", 0)), live)

    def waiting(self) -> list[Reservation]:
        """The unadmitted live requests, with what admission reads (count, lease)."""
        return [Reservation("", "", "", int(entry["count"]), 0, ticket, 0.0,
                            entry["renewed_at"])
                for ticket, entry in self.live.items() if "admitted_at" not in entry]


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


def _pool_pk(instance_type: str) -> str:
    return f"instances#{instance_type}"


def _pool_key(instance_type: str) -> dict:
    return {"pk": {"S": _pool_pk(instance_type)}, "sk": {"S": POOL}}


def _live_key(ticket: int) -> str:
    return f"t{ticket}"


def _timeline_key(instance_type: str, ticket: int) -> dict:
    return {"pk": {"S": _pool_pk(instance_type)}, "sk": {"S": f"ticket#{ticket:012d}"}}


def _reservation_key(job_name: str) -> dict:
    return {"pk": {"S": f"reservation#{job_name}"}, "sk": {"S": "reservation"}}


def _sk(attempt: int) -> str:
    return f"attempt#{attempt:06d}"


# --- item conversion: boto3's own serializer, numbers stored as they were ----------

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()
_Record = TypeVar("_Record")


def _item(record: Any, leave_out: Collection[str] = ()) -> dict:
    """A record's fields as DynamoDB attributes (None fields are left out). Floats are
    written as the shortest decimal that reads back as the same float (``repr``)."""
    return {f.name: _SERIALIZER.serialize(_storable(getattr(record, f.name)))
            for f in fields(record)
            if f.name not in leave_out and getattr(record, f.name) is not None}


def _storable(value: Any) -> Any:
    return Decimal(repr(value)) if isinstance(value, float) else value  # serializer: no floats


def _plain(item: dict) -> dict[str, Any]:
    """An item's attributes as Python values (numbers as ``Decimal``)."""
    return {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}


def _from_plain(record_type: type[_Record], plain: dict[str, Any]) -> _Record:
    """The record of ``record_type`` in an item's plain values: numbers become the int
    or float of their field; fields the item lacks are None; other attributes
    (keys, TTL, index markers) are ignored."""
    numbers = _number_fields(record_type)
    values = {}
    for f in fields(record_type):
        value = plain.get(f.name)
        if isinstance(value, Decimal) and f.name in numbers:
            value = numbers[f.name](value)
        values[f.name] = value
    return record_type(**values)


@cache
def _number_fields(record_type: type) -> dict[str, type]:
    """The record's number fields -> int or float, from its annotations (``float | None``
    is float)."""
    numbers: dict[str, type] = {}
    for name, hint in typing.get_type_hints(record_type).items():
        kinds = typing.get_args(hint) or (hint,)
        if float in kinds:
            numbers[name] = float
        elif int in kinds:
            numbers[name] = int
    return numbers


def _query_all(client: Any, **kwargs) -> list[dict]:
    paginator = client.get_paginator("query")
    return [item for page in paginator.paginate(**kwargs) for item in page["Items"]]


def main(argv: list[str] | None = None) -> int:
    """``python -m resources.job_store.dynamodb --table NAME [--region R]``: create the table."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m resources.job_store.dynamodb",
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
