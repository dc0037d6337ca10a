"""Parts shared by the exception messages (pacs.028, pacs.004, camt.056, camt.029).

The original payment's references (OrgnlGrpInf, OrgnlInstrId, OrgnlEndToEndId, OrgnlTxId,
OrgnlUETR), one reason block (Rsn/Cd or Rsn/Prtry plus AddtlInf lines), and the case assignment
and case of camt.056/camt.029 (Assgnmt: Id, Assgnr, Assgne, CreDtTm; Case: Id, Cretr), whose
assigner, assignee and creator the switch takes as agents only.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Final

from lxml import etree

from iso20022._xml import (
    AGENT_SPEC,
    CHOICE_SPEC,
    LIST,
    TEXT,
    AgentKeys,
    Writer,
    agent_in,
    datetime_in,
    flatten,
    message_body,
    required_in,
    write_agent,
)
from iso20022.errors import XmlRejected
from iso20022.parsing import message_id_of
from iso20022.model import Agent
from iso20022.pacs002 import OriginalGroup

ORIGINAL_SPEC: Final = {"OrgnlMsgId": TEXT, "OrgnlMsgNmId": TEXT, "OrgnlCreDtTm": TEXT}
REFERENCES_SPEC: Final = {
    "OrgnlGrpInf": ORIGINAL_SPEC,
    "OrgnlInstrId": TEXT,
    "OrgnlEndToEndId": TEXT,
    "OrgnlTxId": TEXT,
    "OrgnlUETR": TEXT,
}
REASON_SPEC: Final = {"Rsn": CHOICE_SPEC, "AddtlInf": LIST}  # the first reason block only
_PARTY_OR_AGENT: Final = {"Agt": AGENT_SPEC, "Pty": {}}
CASE_ASSIGNMENT_SPEC: Final = {"Id": TEXT, "Assgnr": _PARTY_OR_AGENT, "Assgne": _PARTY_OR_AGENT, "CreDtTm": TEXT}
CASE_SPEC: Final = {"Id": TEXT, "Cretr": _PARTY_OR_AGENT}


def check_reason(code: str | None, proprietary: str | None) -> None:
    """A reason is Rsn/Cd or Rsn/Prtry (an XSD choice), never both."""
    if code is not None and proprietary is not None:
        raise ValueError(f"a reason has a code or a proprietary code, not {code!r} and {proprietary!r}")


def check_case(case_id: str | None, creator: Agent | None) -> None:
    """Case has both Id and Cretr, or is absent."""
    if (case_id is None) != (creator is None):
        raise ValueError(f"a case has both an id and a creator, not {case_id!r} and {creator!r}")


def write_references(
    w: Writer,
    original_group: OriginalGroup | None,
    instruction_id: str | None,
    end_to_end_id: str | None,
    tx_id: str | None,
    uetr: str | None,
) -> None:
    """OrgnlGrpInf, OrgnlInstrId, OrgnlEndToEndId, OrgnlTxId, OrgnlUETR (absent ones skipped)."""
    if original_group is not None:
        w.open("OrgnlGrpInf")
        w.leaf("OrgnlMsgId", original_group.message_id)
        w.leaf("OrgnlMsgNmId", original_group.message_name_id)
        if original_group.created_at is not None:
            w.leaf("OrgnlCreDtTm", original_group.created_at.isoformat())
        w.close("OrgnlGrpInf")
    for tag, value in (
        ("OrgnlInstrId", instruction_id),
        ("OrgnlEndToEndId", end_to_end_id),
        ("OrgnlTxId", tx_id),
        ("OrgnlUETR", uetr),
    ):
        if value is not None:
            w.leaf(tag, value)


def write_reason(w: Writer, tag: str, code: str | None, proprietary: str | None, additional_info: tuple[str, ...]) -> None:
    """tag/(Rsn/(Cd|Prtry), AddtlInf*), nothing when all are absent."""
    if code is None and proprietary is None and not additional_info:
        return
    w.open(tag)
    w.choice("Rsn", code, proprietary)
    for line in additional_info:
        w.leaf("AddtlInf", line)
    w.close(tag)


def write_case_assignment(w: Writer, assignment_id: str, assigner: Agent, assignee: Agent, created_at: datetime) -> None:
    w.open("Assgnmt")
    w.leaf("Id", assignment_id)
    for tag, agent in (("Assgnr", assigner), ("Assgne", assignee)):
        w.open(tag)
        write_agent(w, "Agt", agent)
        w.close(tag)
    w.leaf("CreDtTm", created_at.isoformat())
    w.close("Assgnmt")


def write_case(w: Writer, tag: str, case_id: str | None, creator: Agent | None) -> None:
    if case_id is None or creator is None:
        return
    w.open(tag)
    w.leaf("Id", case_id)
    w.open("Cretr")
    write_agent(w, "Agt", creator)
    w.close("Cretr")
    w.close(tag)


def original_group_in(f: dict, where: str, prefix: str = "OrgnlGrpInf") -> OriginalGroup | None:  # type: ignore[type-arg]
    """The OriginalGroup flattened under prefix with ORIGINAL_SPEC, None without the element."""
    if prefix not in f:
        return None
    return OriginalGroup(
        message_id=required_in(f, f"{prefix}/OrgnlMsgId", where),
        message_name_id=required_in(f, f"{prefix}/OrgnlMsgNmId", where),
        created_at=datetime_in(f, f"{prefix}/OrgnlCreDtTm", where),
    )


def required_datetime(f: dict, key: str, where: str = "") -> datetime:  # type: ignore[type-arg]
    value = datetime_in(f, key, where)
    if value is None:
        path = f"{where}/{key}" if where else key
        raise XmlRejected("FF01", f"{path} is missing", path=path)
    return value


def date_in(f: dict, key: str, where: str = "") -> date | None:  # type: ignore[type-arg]
    """The ISO date at key, None when absent, XmlRejected FF01 when unreadable."""
    value = f.get(key)
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        path = f"{where}/{key}" if where else key
        raise XmlRejected("FF01", f"{path}: {value!r} is not an ISO date", path=path) from None


def agent_required(f: dict, path: str) -> Agent:  # type: ignore[type-arg]
    """The agent at path/Agt (flattened with a {"Agt": AGENT_SPEC, "Pty": {}} group); a party is FF01."""
    agent = agent_in(f, AgentKeys(f"{path}/Agt"))
    if agent is None:
        if f"{path}/Pty" in f:
            raise XmlRejected("FF01", f"{path}/Pty: the switch takes an agent here ({path}/Agt)", path=f"{path}/Pty")
        raise XmlRejected("FF01", f"{path}/Agt is missing", path=f"{path}/Agt")
    return agent


def case_assignment_in(root: etree._Element, versions: tuple[str, ...], rules_by_version: dict, message: str, case_tag: str) -> tuple[dict, dict, dict]:  # type: ignore[type-arg]
    """The flattened body of a case message (camt.056 / camt.029) in one of `versions`, with its
    assignment and case read: (fields, transaction rules, header values for the model:
    assignment_id, created_at, assigner, assignee, case_id, case_creator). XmlRejected (FF01)
    for another version, a missing Assgnmt, or a party where the switch takes an agent."""
    version = message_id_of(root)
    rules = rules_by_version.get(version)
    if rules is None:
        raise XmlRejected("FF01", f"expected one of {versions}, got {version}")
    q, body_rules, tx_rules = rules
    f = flatten(message_body(root, version, q, message), body_rules, {})
    if "Assgnmt" not in f:
        raise XmlRejected("FF01", "Assgnmt is missing", path="Assgnmt")
    has_case = case_tag in f
    header = {
        "assignment_id": required_in(f, "Assgnmt/Id"),
        "created_at": required_datetime(f, "Assgnmt/CreDtTm"),
        "assigner": agent_required(f, "Assgnmt/Assgnr"),
        "assignee": agent_required(f, "Assgnmt/Assgne"),
        "case_id": required_in(f, f"{case_tag}/Id") if has_case else None,
        "case_creator": agent_required(f, f"{case_tag}/Cretr") if has_case else None,
    }
    return f, tx_rules, header
