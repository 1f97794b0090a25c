"""Deployments in the single table: one item by id and one by (flow name, name), written
together so a name belongs to one deployment at a time (part of `DynamoRunStore`)."""

from __future__ import annotations

from sluice.exceptions import Conflict, NotFound
from sluice.models import Deployment, Page

from ...config import TABLE_PARTITION_KEY, TABLE_SORT_KEY
from ..records import read_record, readable, written_record
from . import dynamo_items as items
from .dynamo_table import EXISTS, NOT_EXISTS, KeyQuery, SingleTable

#: Deployment upserts retry after losing a race on the (flow name, name) guard at most this often.
MAX_UPSERT_ATTEMPTS = 5


class DynamoDeployments:
    """The deployment methods of `DynamoRunStore` (which provides `_table`)."""

    _table: SingleTable

    def _deployment_writes(self, deployment: Deployment, *, insert: bool) -> list:
        data = items.s(deployment.model_dump_json())
        by_id = {**items.deployment_key(deployment.id), items.DATA: data}
        by_name = {**items.deployment_name_key(deployment.flow_name, deployment.name),
                   items.DATA: data, items.DEPLOYMENT_ID: items.s(deployment.id)}
        if insert:  # the name item first: its reason tells a taken name from a taken id
            return [("Put", self._table.put_request(by_name, NOT_EXISTS)),
                    ("Put", self._table.put_request(by_id, NOT_EXISTS))]
        # Replace only while the name still belongs to this deployment (not deleted meanwhile).
        owner = {"#owner": items.DEPLOYMENT_ID}
        return [
            ("Put", self._table.put_request(by_name, "#owner = :id", owner,
                                            {":id": items.s(deployment.id)})),
            ("Put", self._table.put_request(by_id, EXISTS)),
        ]

    def upsert_deployment(self, deployment: Deployment) -> Deployment:
        name_key = items.deployment_name_key(deployment.flow_name, deployment.name)
        for _ in range(MAX_UPSERT_ATTEMPTS):
            current = self._table.get(name_key, "get deployment by name")
            if current is None:
                stored = deployment
            else:
                try:
                    existing = Deployment.model_validate_json(items.data_of(current))
                    kept = {"id": existing.id, "created": existing.created,
                            "created_by": existing.created_by}
                except ValueError:  # unreadable (adapters.records): replaced, keeping its id
                    kept = {"id": current[items.DEPLOYMENT_ID]["S"]}
                stored = deployment.model_copy(update=kept)
            written_record(Deployment, stored.model_dump_json(), kind="deployment",
                           ref=stored.id)
            try:
                self._table.transact("upsert deployment",
                                     *self._deployment_writes(stored, insert=current is None))
            except Conflict as error:
                reasons = (error.details or {}).get("reasons") or []
                if current is None and reasons[:2] == ["None", "ConditionalCheckFailed"]:
                    raise Conflict(f"deployment id {deployment.id} already exists under another "
                                   "name", details={"deployment_id": deployment.id}) from error
                continue  # lost a race on the name (insert or delete meanwhile): read again
            return Deployment.model_validate_json(stored.model_dump_json())
        raise Conflict(f"deployment {deployment.flow_name}/{deployment.name} is being changed "
                       "concurrently; retry")

    def get_deployment(self, deployment_id: str) -> Deployment:
        item = self._table.get(items.deployment_key(deployment_id), "get deployment")
        if item is None:
            raise NotFound(f"deployment {deployment_id} not found",
                           details={"deployment_id": deployment_id})
        return read_record(Deployment, items.data_of(item), kind="deployment", ref=deployment_id)

    def get_deployment_by_name(self, flow_name: str, name: str) -> Deployment:
        item = self._table.get(items.deployment_name_key(flow_name, name), "get deployment")
        if item is None:
            raise NotFound(f"deployment {flow_name}/{name} not found",
                           details={"flow_name": flow_name, "name": name})
        return read_record(Deployment, items.data_of(item), kind="deployment",
                           ref=f"{flow_name}/{name}")

    def list_deployments(self, *, flow_name: str | None = None, limit: int,
                         cursor: str | None = None) -> Page[Deployment]:
        query = KeyQuery(name="deployments",
                         partition=(TABLE_PARTITION_KEY, items.DEPLOYMENT_NAMES_PARTITION))
        if flow_name is not None:
            query.name = "deployments-of-flow"
            query.sort_condition = "begins_with(#sk, :flow)"
            query.names["#sk"] = TABLE_SORT_KEY
            query.values[":flow"] = items.s(items.deployment_name_sort_key(flow_name))
        found, next_cursor = self._table.page(query, limit=limit, cursor=cursor)
        deployments = readable(found, lambda i: Deployment.model_validate_json(items.data_of(i)),
                               kind="deployment", ref=lambda i: i[TABLE_SORT_KEY]["S"])
        return Page[Deployment](items=deployments, next_cursor=next_cursor)

    def update_deployment(self, deployment: Deployment) -> Deployment:
        written_record(Deployment, deployment.model_dump_json(), kind="deployment",
                       ref=deployment.id)
        current = self.get_deployment(deployment.id)
        if (current.flow_name, current.name) != (deployment.flow_name, deployment.name):
            raise Conflict("a deployment's flow name and name cannot change; upsert a new "
                           "deployment", details={"deployment_id": deployment.id})
        try:
            self._table.transact("update deployment",
                                 *self._deployment_writes(deployment, insert=False))
        except Conflict:
            self.get_deployment(deployment.id)  # NotFound if it was deleted meanwhile
            raise
        return Deployment.model_validate_json(deployment.model_dump_json())

    def delete_deployment(self, deployment_id: str) -> None:
        current = self.get_deployment(deployment_id)
        owner = {"#owner": items.DEPLOYMENT_ID}
        try:
            self._table.transact(
                "delete deployment",
                ("Delete", self._table.delete_request(items.deployment_key(deployment_id), EXISTS)),
                ("Delete", self._table.delete_request(
                    items.deployment_name_key(current.flow_name, current.name), "#owner = :id",
                    owner, {":id": items.s(deployment_id)})),
            )
        except Conflict as error:
            raise NotFound(f"deployment {deployment_id} not found",
                           details={"deployment_id": deployment_id}) from error

