"""Typed message models: parsing names the problem."""
import pytest

from connector.protocol.errors import MalformedMessage
from connector.protocol.messages import (
    ContractNegotiationEventMessage,
    ContractNegotiationTerminationMessage,
    ContractRequestMessage,
    parse_message,
)

OFFER = {"@id": "urn:offer:1", "@type": "Offer", "target": "ds-1", "permission": [{"action": "use"}]}


def test_request_round_trip():
    doc = {"@type": "ContractRequestMessage", "consumerPid": "urn:c:1", "offer": OFFER, "callbackAddress": "http://c/dsp"}
    msg = parse_message(doc, expected=("ContractRequestMessage",))
    assert isinstance(msg, ContractRequestMessage)
    assert msg.to_neutral() == doc


@pytest.mark.parametrize("doc,needle", [
    ({"@type": "ContractRequestMessage", "offer": OFFER, "callbackAddress": "x"}, "'consumerPid' is missing"),
    ({"@type": "ContractRequestMessage", "consumerPid": "c", "callbackAddress": "x"}, "'offer' must be an object"),
    ({"@type": "ContractRequestMessage", "consumerPid": "c", "offer": "urn:offer:1"}, "not a bare id"),
    ({"@type": "ContractRequestMessage", "consumerPid": "c", "offer": {"@type": "Offer"}}, "offer '@id' is missing"),
    ({"@type": "ContractAgreementMessage", "providerPid": "p", "consumerPid": "c",
      "agreement": {"@id": "a", "@type": "Agreement", "target": "t", "assigner": "x"}}, "'assignee' is missing"),
    ({"consumerPid": "c"}, "'@type' is missing"),
    ({"@type": "ContractOfferMessage", "providerPid": "p", "offer": OFFER}, "expected ContractRequestMessage"),
    ({"@type": "ContractNegotiationEventMessage", "providerPid": "p", "consumerPid": "c", "eventType": "DONE"}, "eventType"),
])
def test_malformed_messages_name_the_problem(doc, needle):
    expected = ("ContractRequestMessage", "ContractAgreementMessage", "ContractNegotiationEventMessage")
    with pytest.raises(MalformedMessage) as err:
        parse_message(doc, expected=expected)
    assert needle in err.value.reason


def test_event_type_read_leniently():
    for raw in ("ACCEPTED", "dspace:ACCEPTED", "https://w3id.org/dspace/2024/1/ACCEPTED"):
        msg = parse_message({"@type": "ContractNegotiationEventMessage", "providerPid": "p", "consumerPid": "c",
                             "eventType": raw}, expected=("ContractNegotiationEventMessage",))
        assert isinstance(msg, ContractNegotiationEventMessage) and msg.event_type == "ACCEPTED"


def test_termination_reasons_in_every_spelling():
    msg = parse_message({"@type": "ContractNegotiationTerminationMessage", "providerPid": "p", "consumerPid": "c",
                         "reason": ["plain", {"@value": "tagged", "@language": "en"}, {"message": "tck"}]},
                        expected=("ContractNegotiationTerminationMessage",))
    assert isinstance(msg, ContractNegotiationTerminationMessage)
    assert msg.reason == ["plain", "tagged", "tck"]


def test_counter_request_carries_provider_pid_not_callback():
    msg = ContractRequestMessage(consumer_pid="c", offer=OFFER, provider_pid="p", callback_address="http://x")
    out = msg.to_neutral()
    assert out["providerPid"] == "p" and "callbackAddress" not in out
