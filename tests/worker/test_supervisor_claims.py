"""The worker's claim, with fakes: what it asks the control plane and what it does with the
message when the answer is not a lease."""

from __future__ import annotations

from typing import Any

from sluice import exceptions as errors
from sluice.models import RunMessage
from sluice_worker.supervisor import RunSupervisor
from sluice_worker.worker import Worker


class FakeQueue:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def change_visibility(self, receipt: str, seconds: int) -> None:
        self.calls.append(("visibility", seconds))

    def delete(self, receipt: str) -> None:
        self.calls.append(("delete", receipt))


class OldControlPlane:
    """Refuses the `requeue` field, as a control plane from before it did."""

    def __init__(self) -> None:
        self.claims: list[bool] = []

    def claim_flow_run(self, flow_run_id: str, worker: str, *, attempt: int | None,
                       claim_id: str | None, requeue: bool, start: bool = False,
                       with_deployment: bool = False) -> str:
        self.claims.append(requeue)
        if requeue:
            raise errors.ValidationError("body.requeue: Extra inputs are not permitted",
                                         details=[{"loc": ["body", "requeue"]}])
        return "lease"


def a_worker(client: Any) -> Worker:
    return Worker(client, FakeQueue(), pool="default", name="w1", code=None, reporter=None,
                  standby=False)


def a_message(run_id: str = "fr-1", message_id: str = "m-1") -> dict[str, Any]:
    body = RunMessage(flow_run_id=run_id, pool="default", attempt=0).model_dump_json()
    return {"MessageId": message_id, "Body": body, "ReceiptHandle": f"r-{message_id}"}


def test_a_worker_claims_as_an_older_control_plane_expects_once_it_refuses_requeue():
    # Given a control plane that does not know `requeue`
    plane = OldControlPlane()
    worker = a_worker(plane)
    body = RunMessage(flow_run_id="fr-1", pool="default", attempt=0)
    # When the worker claims twice, Then the first refusal turns requeue off for good
    assert RunSupervisor(worker, a_message())._claim(body) == "lease"
    assert RunSupervisor(worker, a_message(message_id="m-2"))._claim(body) == "lease"
    assert plane.claims == [True, False, False] and worker.requeue_supported is False


def test_a_second_delivery_of_a_message_being_handled_never_starts_the_run_again():
    # Given a run this worker already handles
    worker = a_worker(OldControlPlane())
    first = RunSupervisor(worker, a_message())
    assert worker.take_message("m-1", first)
    # When another copy arrives (same message id: its claim would get the same lease)
    copy = RunSupervisor(worker, a_message())
    copy._run()
    # Then it is put back for later, untouched by a claim
    assert worker.queue.calls == [("visibility", copy.settings.visibility_timeout)]
    assert worker.client.claims == []
    # and once the first is done, the message can be taken again
    worker.release_message("m-1", first)
    assert worker.take_message("m-1", copy)
