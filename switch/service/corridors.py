"""Corridors and partners switched at run time by an operator (issue 11 item 2): a corridor
disabled or enabled, a partner paused or resumed, each with a reason, audited, kept in the
database (corridor_controls) so that every replica's admission reads it in its own transaction.

- Disabling a corridor refuses its new instructions (AG01, switch/domain/corridor_rules.py);
  payments already admitted go on as before (nothing in flight is dropped).
- Pausing a partner refuses new instructions of all its corridors (AB08: the creditor agent's
  network is not available) and holds the messages already queued for it: the outbox relay
  does not deliver them until the partner is resumed (switch/service/relay.py). Payments the
  partner has already received keep their timers (resends, enquiries) as usual.
- A corridor the configuration has off (`enabled = false`) cannot be enabled here: the file
  decides, then a reload.

Refusals are values in Outcome.refusals: ("NOTFOUND", ...) for a corridor or partner this
switch does not have, ("CONFIG", ...) for enabling a corridor the configuration has off.
"""

from __future__ import annotations

from dataclasses import dataclass

from switch import limits
from switch.domain.corridor_rules import Control, ControlKind
from switch.service.audit import audit
from switch.service.handlers import Deps, Outcome
from switch.service.ports import UnitOfWork

CORRIDOR_DISABLED = "corridor.disabled"
CORRIDOR_ENABLED = "corridor.enabled"
PARTNER_PAUSED = "partner.paused"
PARTNER_RESUMED = "partner.resumed"


@dataclass(frozen=True, slots=True)
class SwitchCorridor:
    corridor: str
    enabled: bool
    operator: str
    reason: str


@dataclass(frozen=True, slots=True)
class SwitchPartner:
    partner: str
    paused: bool
    operator: str
    reason: str


async def _put(uow: UnitOfWork, deps: Deps, kind: ControlKind, subject: str, off: bool, operator: str, reason: str,
               action: str) -> Outcome:
    now = deps.clock()
    out = Outcome()
    stored = {(c.kind, c.subject): c for c in await uow.controls_get()}.get((kind, subject))
    control = Control(kind, subject, off, reason[: limits.control_reason_chars_max], operator, now, 1 if stored is None else stored.version + 1)
    await uow.controls_put(control, None if stored is None else stored.version)
    await audit(
        uow, at=now, actor=f"operator {operator}", action=action, subject=subject,
        detail={"reason": control.reason, "was_off": bool(stored and stored.off), "version": control.version},
    )
    out.count("unchanged" if stored is not None and stored.off == off else "changed")
    return out


async def switch_corridor(cmd: SwitchCorridor, uow: UnitOfWork, deps: Deps) -> Outcome:
    corridor = deps.config.corridor(cmd.corridor)
    if corridor is None:
        out = Outcome()
        out.refusals.append(("NOTFOUND", f"no corridor {cmd.corridor[:16]}"))
        return out
    if cmd.enabled and not corridor.enabled:
        out = Outcome()
        out.refusals.append(("CONFIG", f"corridor {corridor.id} is off in corridors.toml (enabled = false): change the file and reload"))
        return out
    action = CORRIDOR_ENABLED if cmd.enabled else CORRIDOR_DISABLED
    return await _put(uow, deps, ControlKind.CORRIDOR, corridor.id, not cmd.enabled, cmd.operator, cmd.reason, action)


async def switch_partner(cmd: SwitchPartner, uow: UnitOfWork, deps: Deps) -> Outcome:
    if cmd.partner not in deps.mappings:
        out = Outcome()
        out.refusals.append(("NOTFOUND", f"no partner {cmd.partner[:35]!r} on this switch"))
        return out
    action = PARTNER_PAUSED if cmd.paused else PARTNER_RESUMED
    return await _put(uow, deps, ControlKind.PARTNER, cmd.partner, cmd.paused, cmd.operator, cmd.reason, action)
