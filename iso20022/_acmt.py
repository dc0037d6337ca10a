"""Parts shared by acmt.023 and acmt.024: the Assgnmt block and IdentificationInformation5."""

from __future__ import annotations

from typing import Final

from iso20022._xml import (
    ACCOUNT_SPEC,
    AGENT_SPEC,
    PARTY_SPEC,
    TEXT,
    AccountKeys,
    AgentKeys,
    PartyKeys,
    Writer,
    account_in,
    agent_in,
    datetime_in,
    party_in,
    required_in,
    write_account,
    write_agent,
    write_party,
)
from iso20022.errors import XmlRejected
from iso20022.model import Agent, Assignment, PartyAndAccount

ASSIGNMENT_SPEC: Final = {
    "MsgId": TEXT,
    "CreDtTm": TEXT,
    "Assgnr": {"Agt": AGENT_SPEC, "Pty": {}},
    "Assgne": {"Agt": AGENT_SPEC, "Pty": {}},
}
PARTY_AND_ACCOUNT_SPEC: Final = {"Pty": PARTY_SPEC, "Acct": ACCOUNT_SPEC, "Agt": AGENT_SPEC}

_ASSIGNER: Final = AgentKeys("Assgnmt/Assgnr/Agt")
_ASSIGNEE: Final = AgentKeys("Assgnmt/Assgne/Agt")


def write_assignment(w: Writer, assignment: Assignment) -> None:
    w.open("Assgnmt")
    w.leaf("MsgId", assignment.message_id)
    w.leaf("CreDtTm", assignment.created_at.isoformat())
    for tag, agent in (("Assgnr", assignment.assigner), ("Assgne", assignment.assignee)):
        w.open(tag)
        write_agent(w, "Agt", agent)
        w.close(tag)
    w.close("Assgnmt")


def write_party_and_account(w: Writer, tag: str, value: PartyAndAccount) -> None:
    w.open(tag)
    if value.party is not None:
        write_party(w, "Pty", value.party)
    if value.account is not None:
        write_account(w, "Acct", value.account)
    if value.agent is not None:
        write_agent(w, "Agt", value.agent)
    w.close(tag)


def assignment_in(f: dict) -> Assignment:  # type: ignore[type-arg]
    """The Assignment from the message body flattened with {"Assgnmt": ASSIGNMENT_SPEC, ...}.

    Assgnr and Assgne may be a party or an agent in the XSD; the switch takes agents only.
    """
    if "Assgnmt" not in f:
        raise XmlRejected("FF01", "Assgnmt is missing", path="Assgnmt")
    created_at = datetime_in(f, "Assgnmt/CreDtTm")
    if created_at is None:
        raise XmlRejected("FF01", "Assgnmt/CreDtTm is missing", path="Assgnmt/CreDtTm")
    return Assignment(
        message_id=required_in(f, "Assgnmt/MsgId"),
        created_at=created_at,
        assigner=_agent(f, "Assgnmt/Assgnr", _ASSIGNER),
        assignee=_agent(f, "Assgnmt/Assgne", _ASSIGNEE),
    )


def _agent(f: dict, path: str, keys: AgentKeys) -> Agent:  # type: ignore[type-arg]
    agent = agent_in(f, keys)
    if agent is None:
        if f"{path}/Pty" in f:
            raise XmlRejected("FF01", f"{path}/Pty: the switch exchanges acmt.023/024 between agents ({path}/Agt)",
                              path=f"{path}/Pty")
        raise XmlRejected("FF01", f"{path}/Agt is missing", path=f"{path}/Agt")
    return agent


class PartyAndAccountKeys:
    """The flattened keys of one IdentificationInformation5 element (e.g. prefix "PtyAndAcctId")."""

    __slots__ = ("element", "party", "account", "agent")

    def __init__(self, prefix: str) -> None:
        self.element = prefix
        self.party = PartyKeys(f"{prefix}/Pty")
        self.account = AccountKeys(f"{prefix}/Acct")
        self.agent = AgentKeys(f"{prefix}/Agt")


def party_and_account_in(f: dict, keys: PartyAndAccountKeys, where: str) -> PartyAndAccount | None:  # type: ignore[type-arg]
    """The PartyAndAccount flattened under keys (spec PARTY_AND_ACCOUNT_SPEC), None without the element."""
    if keys.element not in f:
        return None
    return PartyAndAccount(
        party=party_in(f, keys.party, where),
        account=account_in(f, keys.account, where),
        agent=agent_in(f, keys.agent),
    )
