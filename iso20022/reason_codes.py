"""ISO 20022 external status reason codes (ExternalStatusReason1Code) the switch maps.

retriable: the condition is transient at an agent (timeout, offline), so the same instruction may
be resent unchanged after a backoff. Everything else needs a changed instruction or a person.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class ReasonCode:
    code: str
    name: str  # the ISO code name, spelled as ISO spells it
    description: str
    retriable: bool = False


class UnknownReasonCode(KeyError):
    """A code outside REASON_CODES."""


REASON_CODES: Final[dict[str, ReasonCode]] = {
    rc.code: rc
    for rc in (
        ReasonCode("AB05", "TimeoutCreditorAgent", "Transaction stopped due to timeout at the Creditor Agent.", True),
        ReasonCode("AB06", "TimeoutInstructedAgent", "Transaction stopped due to timeout at the Instructed Agent.", True),
        ReasonCode("AB07", "OfflineAgent", "Agent of message is not online.", True),
        ReasonCode("AB08", "OfflineCreditorAgent", "Creditor Agent is not online.", True),
        ReasonCode("AC01", "IncorrectAccountNumber", "Account number is invalid or missing."),
        ReasonCode("AC04", "ClosedAccountNumber", "Account number specified has been closed on the bank of account's books."),
        ReasonCode("AC06", "BlockedAccount", "Account specified is blocked, prohibiting posting of transactions against it."),
        ReasonCode("AG01", "TransactionForbidden", "Transaction forbidden on this type of account."),
        ReasonCode("AGNT", "IncorrectAgent", "Agent in the payment workflow is incorrect."),
        ReasonCode("AM02", "NotAllowedAmount", "Specific transaction/message amount is greater than allowed maximum."),
        ReasonCode("AM04", "InsufficientFunds", "Amount of funds available to cover specified message amount is insufficient."),
        ReasonCode("AM09", "WrongAmount", "Amount received is not the amount agreed or expected."),
        ReasonCode("AM13", "AmountExceedsClearingSystemLimit", "Transaction amount exceeds limits set by clearing system."),
        ReasonCode("AM14", "AmountExceedsAgreedLimit", "Transaction amount exceeds limits agreed between bank and client."),
        ReasonCode("BE01", "InconsistenWithEndCustomer", "Identification of end customer is not consistent with associated account number."),
        ReasonCode("BE23", "AccountProxyInvalid", "Phone number, email address or other proxy used as account proxy is unknown or invalid."),
        ReasonCode("CH20", "DecimalPointsNotCompatibleWithCurrency", "Number of decimal points not compatible with the currency."),
        ReasonCode("CURR", "IncorrectCurrency", "Currency of the payment is incorrect."),
        ReasonCode("DUPL", "DuplicatePayment", "Payment is a duplicate of another payment."),
        ReasonCode("FF01", "InvalidFileFormat", "File format incomplete or invalid."),
        ReasonCode("FF02", "SyntaxError", "Syntax error; reason given as narrative in the additional reason information."),
        ReasonCode("MS03", "NotSpecifiedReasonAgentGenerated", "Reason has not been specified by agent."),
        ReasonCode("NARR", "Narrative", "Reason is provided as narrative information in the additional reason information."),
        ReasonCode("RC01", "BankIdentifierIncorrect", "Bank identifier code specified in the message has an incorrect format."),
        ReasonCode("RR04", "RegulatoryReason", "Regulatory reason."),
        ReasonCode("RR10", "InvalidCharacterSet", "Character set supplied not valid for the country and payment type."),
        ReasonCode("TM01", "InvalidCutOffTime", "Received after the agreed processing cut-off time."),
    )
}


def for_code(code: str) -> ReasonCode:
    """The ReasonCode for code, or UnknownReasonCode."""
    try:
        return REASON_CODES[code]
    except KeyError:
        raise UnknownReasonCode(code) from None
