"""The replay rule of signed business messages (switch/service/signed.py) through the real bus on
the in-memory fakes: a partner's BizMsgIdr is a key, the Document's SHA-256 its fingerprint."""

from __future__ import annotations

from switch.service.handlers import Deps
from switch.service.signed import NoteSignedMessage, note_signed_messages
from tests.fakes import FakeUnitOfWork


def _note(partner: str, biz_msg_id: str, digest: str) -> NoteSignedMessage:
    return NoteSignedMessage(partner, biz_msg_id, "pacs.002.001.10", digest, f"<BizMsg>{digest}</BizMsg>".encode())


async def test_a_new_bizmsgidr_is_kept_with_its_digest_and_envelope(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    (out,) = await note_signed_messages([_note("promptpay", "S1", "a" * 64)], uow, deps)
    assert out.counts == {"new": 1}
    assert uow.state.signed[("promptpay", "S1")]["envelope"] == b"<BizMsg>" + b"a" * 64 + b"</BizMsg>"


async def test_the_same_document_again_is_a_resend_and_another_one_a_replay(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    await note_signed_messages([_note("promptpay", "S1", "a" * 64)], uow, deps)
    resend, replay = await note_signed_messages([_note("promptpay", "S1", "a" * 64), _note("promptpay", "S1", "b" * 64)], uow, deps)
    assert (resend.counts, replay.counts) == ({"resend": 1}, {"replayed": 1})
    assert uow.state.signed[("promptpay", "S1")]["document_sha256"] == "a" * 64  # the first stays


async def test_within_one_group_the_first_copy_decides(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    outs = await note_signed_messages([_note("napas", "S9", "a" * 64), _note("napas", "S9", "a" * 64), _note("napas", "S9", "c" * 64)], uow, deps)
    assert [o.counts for o in outs] == [{"new": 1}, {"resend": 1}, {"replayed": 1}]


async def test_message_ids_are_per_partner(deps: Deps) -> None:
    uow = FakeUnitOfWork()
    outs = await note_signed_messages([_note("promptpay", "S1", "a" * 64), _note("lapnet", "S1", "b" * 64)], uow, deps)
    assert [o.counts for o in outs] == [{"new": 1}, {"new": 1}]
