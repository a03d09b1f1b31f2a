"""Status sets, mirroring the PostgreSQL enum types of the migrations.

`tests/test_schema.py` fails when a member here and a label there differ.
"""

from __future__ import annotations

from enum import StrEnum


class OnboardingStep(StrEnum):
    STARTED = "started"
    AWAITING_EMAIL = "awaiting_email"
    AWAITING_OTP = "awaiting_otp"
    AWAITING_TERMS = "awaiting_terms"
    COMPLETE = "complete"


class CashoutStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ExchangeStatus(StrEnum):
    QUOTED = "quoted"
    AWAITING_PAYMENT = "awaiting_payment"
    PAID = "paid"
    UNDERPAID = "underpaid"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    FAILED = "failed"


class EscrowStatus(StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"
    FUNDED = "funded"
    ACCEPTED = "accepted"
    DELIVERED = "delivered"
    DISPUTED = "disputed"
    COMPLETED = "completed"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"
    DECLINED = "declined"
    EXPIRED = "expired"


class FeeSplit(StrEnum):
    BUYER = "buyer"
    SELLER = "seller"
    SPLIT = "split"


class PaymentMethod(StrEnum):
    WALLET = "wallet"
    CRYPTO = "crypto"
    BANK_TRANSFER = "bank_transfer"


class DisputeStatus(StrEnum):
    OPEN = "open"
    IN_REVIEW = "in_review"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"


class DisputeResolution(StrEnum):
    RELEASE = "release"
    REFUND = "refund"
    SPLIT = "split"


class TicketStatus(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    CLOSED = "closed"


class PartyRole(StrEnum):
    BUYER = "buyer"
    SELLER = "seller"


class DestinationKind(StrEnum):
    WALLET = "wallet"
    CRYPTO_ADDRESS = "crypto_address"
    BANK_ACCOUNT = "bank_account"


class AccountKind(StrEnum):
    WALLET_AVAILABLE = "wallet_available"
    WALLET_HELD = "wallet_held"
    ESCROW_HOLDING = "escrow_holding"
    PLATFORM_FEES = "platform_fees"
    PLATFORM_TREASURY = "platform_treasury"
    PROVIDER_CLEARING = "provider_clearing"


class PaymentProvider(StrEnum):
    BLOCKBEE = "blockbee"
    DYNOPAY = "dynopay"
    FINCRA = "fincra"


class TransferKind(StrEnum):
    DEPOSIT = "deposit"
    CASHOUT_HOLD = "cashout_hold"
    CASHOUT_SETTLE = "cashout_settle"
    CASHOUT_RELEASE = "cashout_release"
    ESCROW_FUND = "escrow_fund"
    ESCROW_RELEASE = "escrow_release"
    ESCROW_REFUND = "escrow_refund"
    ESCROW_SPLIT = "escrow_split"
    EXCHANGE = "exchange"
    REFERRAL_REWARD = "referral_reward"
    ADJUSTMENT = "adjustment"


class DepositStatus(StrEnum):
    OPEN = "open"
    PAID = "paid"
    EXPIRED = "expired"


class TransferStatus(StrEnum):
    POSTED = "posted"
    FLAGGED = "flagged"
    REVIEWED = "reviewed"


# PostgreSQL type name -> its mirror.
PG_ENUMS: dict[str, type[StrEnum]] = {
    "onboarding_step": OnboardingStep,
    "cashout_status": CashoutStatus,
    "exchange_status": ExchangeStatus,
    "escrow_status": EscrowStatus,
    "fee_split": FeeSplit,
    "payment_method": PaymentMethod,
    "dispute_status": DisputeStatus,
    "dispute_resolution": DisputeResolution,
    "ticket_status": TicketStatus,
    "party_role": PartyRole,
    "destination_kind": DestinationKind,
    "account_kind": AccountKind,
    "payment_provider": PaymentProvider,
    "transfer_kind": TransferKind,
    "transfer_status": TransferStatus,
    "deposit_status": DepositStatus,
}
