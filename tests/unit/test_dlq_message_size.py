"""A request in the dead-letter queue keeps its whole body; its reason attributes give way when the body
and the reason together are over SQS's 1 MiB (body and attributes count together)."""

from __future__ import annotations

from jobcore.adapters.messaging import SQS_MAX_MESSAGE_BYTES, fit_attributes

REASON = {
    "error_type": "ValidationError",
    "error_message": "transform: " + "é" * 2000,
    "source_message_id": "m-1",
    "job_id": "job-1",
}


def _size(body: str, attributes: dict[str, str]) -> int:
    return len(body.encode()) + sum(len(k) + len("String") + len(v.encode()) for k, v in attributes.items())


def test_a_small_request_keeps_its_whole_reason() -> None:
    assert fit_attributes("{}", REASON) == REASON


def test_the_reason_message_is_cut_first_on_a_character_boundary() -> None:
    body = "x" * (SQS_MAX_MESSAGE_BYTES - 1000)
    fitted = fit_attributes(body, REASON)
    assert _size(body, fitted) <= SQS_MAX_MESSAGE_BYTES
    assert fitted["error_message"].startswith("transform: ") and fitted["error_message"].endswith("...")
    assert {k: v for k, v in fitted.items() if k != "error_message"} == {
        k: v for k, v in REASON.items() if k != "error_message"
    }


def test_a_body_at_the_limit_keeps_what_fits_the_error_type_last() -> None:
    body = "x" * (SQS_MAX_MESSAGE_BYTES - 40)
    fitted = fit_attributes(body, REASON)
    assert _size(body, fitted) <= SQS_MAX_MESSAGE_BYTES
    assert fitted == {"error_type": "ValidationError"}
