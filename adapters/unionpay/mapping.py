"""UnionPay International: what its profile cannot say as data.

Nothing yet: pacs.008.001.10 with the clearing system UNIONPAY (Prtry; never UPI, which is
India's), 8-digit IINs under ClrSysId/Prtry UNIONPAY, Luhn-checked card PANs under SchmeNm/Prtry
CARD, CNY with 2 decimals and Latin names are all in config/partners/unionpay.toml and applied by
the shared IsoMapping. This class is the place for a UnionPay quirk that data cannot express, when
one is handed over.
"""

from __future__ import annotations

from adapters.iso_mapping import IsoMapping


class UnionPayMapping(IsoMapping):
    pass
