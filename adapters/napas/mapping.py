"""NAPAS (Vietnam): what its profile cannot say as data.

Nothing yet: pacs.008.001.08 with the clearing system NAPAS (Prtry), 6-digit BINs under
ClrSysId/Cd VN, VND with no decimals, upper-case ASCII names (Đ -> D), card numbers 9704... under
SchmeNm/Prtry CARD, and NAPAS's numeric result codes mapped to ISO reasons are all in
config/partners/napas.toml and applied by the shared IsoMapping. This class is the place for a
NAPAS quirk that data cannot express, when one is handed over.
"""

from __future__ import annotations

from adapters.iso_mapping import IsoMapping


class NapasMapping(IsoMapping):
    pass
