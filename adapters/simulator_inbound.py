"""The partner network's side of inbound payments, for the simulators: it builds pacs.008
messages in the profile's version that pay Bakong customers (by `name@bank` account or by
mobile number), posts them to the switch, and collects the switch's pacs.002 answers.

  POST /sim/inbound   {"payments": [InboundSpec fields...]} -> {"uetrs": [...]} once posted
  GET  /sim/inbound   {"answers": {uetr: {"status", "reason_code", "latency_ms", "answers"}}, "pending": n}

Each pacs.008 goes as a signed business message when the simulator signs (signed again on each
attempt: a fresh AppHdr CreDt, the same Document). Each answer the network receives is checked
(its signature by the simulator's endpoint) and validated against the official XSD; a second answer for the
same UETR is counted (the switch must answer a resend with the same decision), except a RJCT DUPL,
which refuses a duplicate message rather than deciding the payment again. Every answer is also
kept in order in `received`.

Settlement (issue 10): with a ledger (adapters/simulator_settlement.py), the switch's first ACSC
for a payment the network sent records it as settled (CRDT, its IntrBkSttlmAmt).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from adapters.base import PartnerProfile
from switch.signing import HUB, Sealer
from iso20022 import pacs002, pacs008
from iso20022.model import Agent, Amount, BirthPlace, ClearingSystemMember, PartyIdentification, PostalAddress
from iso20022.schemas import SchemaSet

if TYPE_CHECKING:
    from adapters.simulator_settlement import SettlementLedger

# A sending bank in each network, for the simulated debtors (PARTNERS.md examples) [O].
SAMPLE_DEBTOR_AGENTS: Final = {"promptpay": "014", "napas": "970436", "lapnet": "27710418", "unionpay": "26760764"}
# issue 12: the made-up payer's structured address per network (StrtNm, BldgNb, PstCd, TwnNm) and
# the Bakong customer's town; every inbound pacs.008 carries them, with a national id and birth details
SAMPLE_DEBTOR_ADDRESSES: Final = {
    "promptpay": ("Sukhumvit Road", "99", "10110", "Bangkok"),
    "napas": ("Pho Hue", "12", "100000", "Ha Noi"),
    "lapnet": ("Lane Xang Avenue", "7", "01000", "Vientiane"),
    "unionpay": ("Jianguo Road", "88", "100022", "Beijing"),
}
SAMPLE_CREDITOR_TOWN: Final = "Phnom Penh"
switch_bic_default: Final = "NBCAKHPPXXX"
post_timeout_s: Final = 10.0
resend_attempts_max: Final = 3
retry_after_s_max: Final = 5.0  # a 429's Retry-After is honoured up to this


def retry_after_s(headers: Mapping[str, str]) -> float:
    """How long a 429 (the switch's rate limit) asks to wait: its Retry-After seconds, bounded."""
    try:
        return min(retry_after_s_max, max(0.0, float(headers.get("Retry-After", "1"))))
    except ValueError:  # an HTTP date: not what the switch sends
        return 1.0


class InboundSpec(BaseModel):
    """One inbound payment to originate (what a foreign payer's bank asks its network to send)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: str = Field(pattern=r"^[0-9]{1,15}(\.[0-9]{1,5})?$")  # credited to the Bakong account
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    creditor_name: str
    creditor_account: str | None = None  # Bakong `name@bank`
    creditor_mobile: str | None = None  # Bakong mobile, 855...
    debtor_name: str = "SOMCHAI JAIDEE"
    debtor_account: str = "1234567890"
    # issue 12: FATF R16 originator data; compliance=False sends the parties with PstlAdr/Ctry only
    # and no identification (an old-style message, to see the switch refuse or take it)
    compliance: bool = True
    debtor_national_id: str = "3100500123457"
    debtor_birth_date: str = "1980-01-15"
    instructed_amount: str | None = None  # in the partner's currency, when it converted
    exchange_rate: str | None = None
    remittance: str | None = None
    uetr: str | None = None  # set to resend a known payment under a new message id
    message_id: str | None = None  # set to resend a message


@dataclass(frozen=True, slots=True)
class ReceivedAnswer:
    """One pacs.002 transaction status as the network received it."""

    uetr: str
    status: str
    reason_code: str | None
    message_id: str


@dataclass
class _Answer:
    status: str
    reason_code: str | None
    latency_ms: float
    answers: int = 1


class InboundOriginator:
    def __init__(
        self, profile: PartnerProfile, schemas: SchemaSet, *, switch_url: str, switch_bic: str = switch_bic_default,
        signing: Sealer | None = None,
    ) -> None:
        self.profile = profile
        self.signing = signing  # None: bare Documents
        self.schemas = schemas
        self.switch_url = switch_url
        self.switch_bic = switch_bic
        self.answers: dict[str, _Answer] = {}
        self._sent_at: dict[str, float] = {}
        self.stats: Counter[str] = Counter()
        self.samples: dict[str, bytes] = {}
        self.received: list[ReceivedAnswer] = []
        self.sent: dict[str, str] = {}  # uetr -> the pacs.008 MsgId that carried it (a pacs.028 names it)
        self.ledger: SettlementLedger | None = None  # what the network settled (issue 10); None: nothing kept
        # uetr -> (MsgId, EndToEndId, TxId, IntrBkSttlmAmt) until the switch's final answer
        self._unsettled: dict[str, tuple[str, str, str | None, Amount]] = {}

    # ------------------------------------------------------------------ building
    def _debtor(self, spec: InboundSpec) -> pacs008.Party:
        """The payer: name, structured address and national id + birth details (issue 12)."""
        p = self.profile
        if not spec.compliance:
            return pacs008.Party(name=spec.debtor_name, country=p.country)
        street, building, post_code, town = SAMPLE_DEBTOR_ADDRESSES.get(p.partner, ("Main Street", "1", "0000", "Capital"))
        return pacs008.Party(
            name=spec.debtor_name,
            address=PostalAddress(country=p.country, town=town, street=street, building=building, post_code=post_code),
            identification=PartyIdentification(identifier=spec.debtor_national_id, scheme_code="NIDN", issuer=p.country),
            birth=BirthPlace(birth_date=date.fromisoformat(spec.debtor_birth_date), city=town, country=p.country),
        )

    def build(self, spec: InboundSpec, *, now: datetime) -> tuple[str, str, bytes]:
        """(message id, uetr, validated pacs.008 bytes) for one spec."""
        p = self.profile
        uetr = spec.uetr or str(uuid.uuid4())
        message_id = spec.message_id or f"I{p.partner[:3].upper()}{uuid.uuid4().hex}"[:35]
        member = ClearingSystemMember(
            member_id=SAMPLE_DEBTOR_AGENTS.get(p.partner, "00000000"),
            system_code=p.member_id_system_code,
            system_proprietary=p.member_id_system_proprietary,
        )
        if spec.creditor_mobile is not None:
            proxy = pacs008.Proxy(identifier=spec.creditor_mobile, type_proprietary="MBNO")
            # .08 needs an account id beside the proxy: the mobile again
            account = pacs008.Account(other_id=spec.creditor_mobile if p.pacs008_version.endswith(".08") else None, proxy=proxy)
        else:
            account = pacs008.Account(other_id=spec.creditor_account, scheme_proprietary="BAKONG")
        instructed = (
            Amount(spec.instructed_amount, p.currency) if spec.instructed_amount is not None and p.currency != spec.currency else None
        )
        tx = pacs008.CreditTransfer(
            instruction_id=f"E{uetr.replace('-', '')}"[:35],
            end_to_end_id=f"E{uetr.replace('-', '')}"[:35],
            tx_id=f"T{uetr.replace('-', '')}",
            uetr=uetr,
            settlement_amount=Amount(spec.amount, spec.currency),
            accepted_at=now if p.nexus_style else None,
            instructed_amount=instructed,
            exchange_rate=spec.exchange_rate if instructed is not None else None,
            charge_bearer=p.charge_bearer,
            instructing_agent=Agent(clearing_member=member),
            instructed_agent=Agent(bicfi=self.switch_bic),
            debtor=self._debtor(spec),
            debtor_account=pacs008.Account(other_id=spec.debtor_account),
            debtor_agent=Agent(clearing_member=member),
            creditor_agent=Agent(bicfi=self.switch_bic),
            creditor=pacs008.Party(
                name=spec.creditor_name, country="KH",
                address=PostalAddress(country="KH", town=SAMPLE_CREDITOR_TOWN) if spec.compliance else None,
            ),
            creditor_account=account,
            remittance_lines=(spec.remittance,) if spec.remittance else (),
        )
        message = pacs008.CustomerCreditTransfer(
            message_id=message_id,
            created_at=now,
            settlement=pacs008.Settlement(
                clearing_system_code=p.clearing_system_code, clearing_system_proprietary=p.clearing_system_proprietary
            ),
            transactions=(tx,),
            settlement_date=now.date(),
        )
        body = pacs008.build_validated(message, p.pacs008_version, self.schemas)
        self.samples.setdefault("inbound_pacs008", body)
        if self.ledger is not None:
            self._unsettled[uetr] = (message_id, tx.end_to_end_id, tx.tx_id, tx.settlement_amount)
        return message_id, uetr, body

    # ------------------------------------------------------------------ sending
    async def send(self, session: aiohttp.ClientSession, specs: list[InboundSpec]) -> list[str]:
        """Post one pacs.008 per spec to the switch; the UETRs, in order."""
        now = datetime.now(timezone.utc)
        built = [self.build(s, now=now) for s in specs]
        self.sent.update((uetr, message_id) for message_id, uetr, _ in built)
        await asyncio.gather(*(self._post(session, body, uetr) for _, uetr, body in built))
        return [uetr for _, uetr, _ in built]

    async def _post(self, session: aiohttp.ClientSession, body: bytes, uetr: str) -> None:
        self._sent_at.setdefault(uetr, time.perf_counter())
        for attempt in range(resend_attempts_max):
            try:
                sealed = body if self.signing is None else self.signing.seal(HUB, body, now=datetime.now(timezone.utc))
                async with session.post(
                    self.switch_url, data=sealed, headers={"Content-Type": "application/xml; charset=utf-8"},
                    timeout=aiohttp.ClientTimeout(total=post_timeout_s),
                ) as resp:
                    await resp.read()
                    self.stats[f"inbound_http_{resp.status}"] += 1
                    wait_s = retry_after_s(resp.headers) if resp.status == 429 else None  # over the switch's rate: as told
                    if resp.status < 500 and wait_s is None:
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                self.stats["inbound_post_errors"] += 1
                wait_s = None
            await asyncio.sleep(wait_s if wait_s is not None else 0.1 * 2**attempt)

    # ------------------------------------------------------------------ answers
    def receive_answer(self, report: pacs002.PaymentStatusReport) -> None:
        """The switch's pacs.002 for inbound payments (already validated against the XSD)."""
        for tx in report.transactions:
            uetr = tx.original_uetr
            if uetr is None:
                self.stats["answers_without_uetr"] += 1
                continue
            reason = tx.reasons[0].code if tx.reasons else None
            self.received.append(ReceivedAnswer(uetr, tx.status.value, reason, report.message_id))
            # final: settled (the first ACSC, once) or not; a RJCT DUPL refuses a resent message, not the payment
            if tx.status.value == "ACSC" or (tx.status.value == "RJCT" and reason != "DUPL"):
                paying = self._unsettled.pop(uetr, None)
                if paying is not None and tx.status.value == "ACSC" and self.ledger is not None:
                    message_id, end_to_end_id, tx_id, amount = paying
                    self.ledger.paid_in(message_id, uetr, end_to_end_id, tx_id, amount)
            known = self.answers.get(uetr)
            if known is not None and reason == "DUPL":  # our duplicate refused, the decision stands
                self.stats["answers_duplicate"] += 1
                continue
            if known is not None:
                known.answers += 1
                self.stats["answers_repeated"] += 1
                if (known.status, known.reason_code) != (tx.status.value, reason):
                    self.stats["answers_changed"] += 1  # must never happen
                continue
            started = self._sent_at.get(uetr)
            latency = (time.perf_counter() - started) * 1000 if started is not None else -1.0
            self.answers[uetr] = _Answer(tx.status.value, reason, latency)
            self.stats[f"answered_{tx.status.value}" + (f"_{reason}" if reason else "")] += 1

    def summary(self) -> dict[str, Any]:
        return {
            "answers": {u: a.__dict__ for u, a in self.answers.items()},
            "pending": len([u for u in self._sent_at if u not in self.answers]),
            "stats": dict(self.stats),
        }
