"""Every partner profile: random valid payments (creditor ids drawn from the profile's own
patterns, names in Khmer, Thai, Lao, Vietnamese, Chinese or Latin, any amount) that the mapping
admits become a pacs.008 that validates against the official XSD and that the partner's
simulator accepts."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from adapters.promptpay.mapping import thai_mobile_ok
from adapters.base import PartnerProfile, luhn_ok
from adapters.registry import MAPPINGS
from adapters.simulator import SIMULATORS
from iso20022 import pacs008
from iso20022.parsing import parse_untrusted
from iso20022.schemas import SchemaSet
from switch.domain.errors import InstructionRejected
from switch.domain.money import CURRENCIES, Money
from switch.domain.payment import Party
from tests.unit.partner_kit import CREATED_AT, MESSAGE_ID, mapping_for, payment

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SCRIPTS = {
    "khmer": "កខគឃងចឆជឈញដឋឌឍណតថទធនបផពភមយរលវសហឡអាិីឹឺុូួើឿៀេែៃោៅំះ់្",
    "thai": "กขคงจฉชซญดตถทธนบปผฝพฟภมยรลวศษสหอฮะาำิีึืุูเแโใไ่้๊๋",
    "lao": "ກຂຄງຈຊຍດຕຖທນບປຜຝພຟມຢຣລວສຫອຮະາິີຶືຸູເແໂໃໄ່້",
    "vietnamese": "aăâbcdđeêghiklmnoôơpqrstuưvxyàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệìỉĩíịòỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵĐ",
    "chinese": "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗明伟芳娜秀英敏静丽强磊军洋",
    "latin": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'-.,()/",
}
PARTNERS = sorted(MAPPINGS)


def names(chars_max: int) -> st.SearchStrategy[str]:
    """A name in one script: words of that script's characters separated by single spaces."""
    def in_script(alphabet: str) -> st.SearchStrategy[str]:
        word = st.text(alphabet=alphabet, min_size=1, max_size=12)
        return st.lists(word, min_size=1, max_size=4).map(" ".join).filter(lambda s: len(s) <= chars_max)
    return st.sampled_from(sorted(SCRIPTS)).flatmap(lambda script: in_script(SCRIPTS[script]))


def with_luhn(body: str) -> str:
    """body plus the Luhn check digit that makes the whole valid."""
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


@st.composite
def creditors(draw: st.DrawFn, profile: PartnerProfile) -> Party:
    name = draw(names(profile.name_chars_max))
    if profile.proxies and draw(st.booleans()):
        proxy_type = draw(st.sampled_from(sorted(profile.proxies)))
        proxies = st.from_regex(profile.proxies[proxy_type].pattern, fullmatch=True)
        if proxy_type == "MOBILE":  # a mobile proxy must also be a real mobile number (libphonenumber)
            proxies = proxies.filter(thai_mobile_ok)
        return Party(name=name, proxy_type=proxy_type, proxy=draw(proxies))
    agent = draw(st.from_regex(profile.member_id_pattern, fullmatch=True))
    if profile.card_pattern is not None and draw(st.booleans()):
        account = draw(st.from_regex(profile.card_pattern, fullmatch=True))
    else:
        account = draw(st.from_regex(profile.account_pattern, fullmatch=True))
    if profile.card_luhn and profile.is_card(account):
        account = with_luhn(account[:-1])
    return Party(name=name, account=account, agent=agent)


def target_amounts(profile: PartnerProfile) -> st.SearchStrategy[Money]:
    """Amounts the partner takes: whole units where its amount decimals are fewer than ISO's."""
    currency = CURRENCIES[profile.currency]
    step = 10 ** (currency.exponent - profile.amount_decimals)
    return st.integers(min_value=1, max_value=10**15 // step).map(lambda n: Money(n * step, currency))


@pytest.mark.parametrize("partner", PARTNERS)
def test_admitted_payments_validate_and_pass_the_simulator(schemas: SchemaSet, partner: str) -> None:
    mapping = mapping_for(partner)
    profile = mapping.profile
    simulator = SIMULATORS[partner](profile, schemas, callback_url="http://127.0.0.1:9/none")

    @SETTINGS
    @given(
        creditor=creditors(profile),
        debtor_name=names(profile.name_chars_max),
        target=target_amounts(profile),
        source_riel=st.integers(min_value=1, max_value=10**12),
        remittance=st.none() | names(profile.remittance_chars_max),
    )
    def check(creditor: Party, debtor_name: str, target: Money, source_riel: int, remittance: str | None) -> None:
        try:
            mapping.check_creditor(creditor)
            mapping.check_text(debtor_name, "debtor name", profile.name_chars_max)
            if remittance:
                mapping.check_text(remittance, "remittance information", profile.remittance_chars_max)
        except InstructionRejected as exc:  # only a name with no Latin form at all may be refused
            assert exc.reason_code == "RR10", exc
            assume(False)
        source = Money(source_riel * 100, CURRENCIES["KHR"])
        p = payment(partner, creditor=creditor, debtor=replace(payment(partner).debtor, name=debtor_name),
                    source=source, instructed=source, target=target, remittance=remittance)
        message = mapping.to_pacs008([p], message_id=MESSAGE_ID, created_at=CREATED_AT)
        data = pacs008.build_validated(message, profile.pacs008_version, schemas)  # SchemaViolation if not
        parsed = pacs008.parse(parse_untrusted(data))
        (tx,) = parsed.transactions
        assert simulator.check(parsed, tx) is None
        assert tx.settlement_amount.currency == profile.currency
        assert p.creditor.name == creditor.name  # the original stays on the payment

    check()
