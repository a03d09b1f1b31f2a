"""Money rules that need no database: formatting, parsing, validation of destinations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

import base58
from Crypto.Hash import keccak

FIAT_SYMBOLS = {"NGN": "₦", "USD": "$"}


def format_amount(amount: Decimal, currency: str, decimals: int) -> str:
    """`1234567.5` NGN -> `₦1,234,567.50`; `0.00012000` BTC -> `0.00012 BTC`.

    Rounds toward zero at the currency's precision, so a balance is never shown
    larger than it is. Fiat keeps its cents; crypto drops trailing zeros.
    """
    step = Decimal(1).scaleb(-decimals)
    value = amount.quantize(step, rounding=ROUND_DOWN)
    symbol = FIAT_SYMBOLS.get(currency)
    if symbol:
        return f"{symbol}{value:,.{decimals}f}"
    text = f"{value:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {currency}"


def format_usd(amount: Decimal) -> str:
    return format_amount(amount, "USD", 2)


# --- people's handles ---------------------------------------------------------

_USERNAME = re.compile(r"^@?([A-Za-z][A-Za-z0-9_]{4,31})$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class HandleError(ValueError):
    """Text that is not a Telegram username, an e-mail address or a phone number."""


@dataclass(frozen=True, slots=True)
class Handle:
    kind: str  # "username", "email" or "phone"
    value: str  # lowercase username without "@", lowercase e-mail, or E.164 phone


def normalize_phone(text: str) -> str:
    """A phone number in E.164; Nigerian local numbers get +234.

    `0803 123 4567`, `+234 803 123 4567` and `2348031234567` all give `+2348031234567`.
    """
    raw = text.strip()
    digits = re.sub(r"[\s\-().]", "", raw)
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("0") and len(digits) == 11:
        digits = "234" + digits[1:]
    if not digits.isdigit() or not digits.isascii() or digits.startswith("0"):
        raise HandleError(f"{text!r} is not a phone number")
    if digits.startswith("234") and len(digits) != 13:
        raise HandleError(f"{text!r} is not a Nigerian phone number (+234 and 10 digits)")
    if not 8 <= len(digits) <= 15:
        raise HandleError(f"{text!r} is not a phone number")
    return "+" + digits


def normalize_handle(text: str) -> Handle:
    """How a user names another: `@Username`, `username`, an e-mail or a phone number."""
    text = text.strip()
    if "@" in text[1:]:
        if not _EMAIL.match(text):
            raise HandleError(f"{text!r} is not an e-mail address")
        return Handle("email", text.lower())
    if m := _USERNAME.match(text):
        return Handle("username", m.group(1).lower())
    if re.fullmatch(r"[+\d][\d\s\-().]{6,}", text):
        return Handle("phone", normalize_phone(text))
    raise HandleError(f"{text!r} is not a username, e-mail address or phone number")


# --- amounts ------------------------------------------------------------------

MAX_AMOUNT_TEXT = 4000
# Amounts are numeric(38, 18) in the database: at most 20 digits before the point.
MAX_INTEGER_DIGITS = 20

# Commas only as thousands separators, the first group not starting with 0:
# "0,500" is a decimal comma in much of the world, and reading it as 500 would
# multiply someone's money by a thousand.
_AMOUNT = re.compile(
    r"(?P<whole>[1-9][0-9]{0,2}(?:,[0-9]{3})+|[0-9]+)?(?:\.(?P<fraction>[0-9]*))?", re.ASCII
)
_NOT_A_NUMBER = re.compile(r"[+-]?(?:s?nan|inf(?:inity)?)", re.IGNORECASE)
_EXPONENT = re.compile(r"[+-]?[0-9.,]*[0-9][0-9.,]*e[+-]?[0-9]*", re.IGNORECASE | re.ASCII)


class AmountError(ValueError):
    """Text that is not an acceptable amount; `str()` says why, for the user."""


def _plain(value: Decimal) -> str:
    """`Decimal("1000.500")` -> `1,000.5`: a limit as a person writes it."""
    text = f"{value:,f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def parse_amount(
    text: str,
    decimals: int,
    *,
    minimum: Decimal | None = None,
    maximum: Decimal | None = None,
    allow_zero: bool = False,
) -> Decimal:
    """An amount typed by a person, exactly, at no more than `decimals` places.

    `parse_amount("1,000.50", 2)` -> `Decimal("1000.5")`; `parse_amount(".5", 8)`
    -> `Decimal("0.5")`. Trailing zeros past the precision are harmless
    (`"5.000"` with 2 decimals is 5); a significant digit past it is refused,
    never rounded away. Refuses negatives, zero (unless `allow_zero`), NaN,
    infinities, exponents, digits other than 0-9 and anything else.
    """
    if len(text) > MAX_AMOUNT_TEXT:
        raise AmountError("That is far too long to be an amount.")
    s = text.strip()
    if not s:
        raise AmountError("Please enter an amount, e.g. 1,000.50.")
    if any(ch.isdigit() and not ch.isascii() for ch in s):
        raise AmountError("Please write the amount with the digits 0-9.")
    if _NOT_A_NUMBER.fullmatch(s):
        raise AmountError("Please enter a number, e.g. 1,000.50.")
    if s.startswith("-") and _AMOUNT.fullmatch(s[1:].strip()):
        raise AmountError("The amount must be more than zero.")
    if _EXPONENT.fullmatch(s):
        raise AmountError("Please write the amount in full, without an exponent (e.g. 100000).")
    m = _AMOUNT.fullmatch(s)
    if m is None or not (m["whole"] or m["fraction"]):
        if "," in s and not s.strip("0123456789,."):
            raise AmountError("Commas may only separate thousands, e.g. 1,000.50.")
        raise AmountError("That is not an amount. Please enter a number, e.g. 1,000.50.")
    whole = (m["whole"] or "0").replace(",", "").lstrip("0") or "0"
    fraction = (m["fraction"] or "").rstrip("0")
    if len(fraction) > decimals:
        if decimals == 0:
            raise AmountError("Please enter a whole number, without decimals.")
        raise AmountError(f"Use at most {decimals} decimal places.")
    if len(whole) > MAX_INTEGER_DIGITS:
        raise AmountError("That amount is too large.")
    value = Decimal(f"{whole}.{fraction}" if fraction else whole)
    if value == 0 and not allow_zero:
        raise AmountError("The amount must be more than zero.")
    if minimum is not None and value < minimum:
        raise AmountError(f"The minimum is {_plain(minimum)}.")
    if maximum is not None and value > maximum:
        raise AmountError(f"The maximum is {_plain(maximum)}.")
    return value


# --- crypto addresses ---------------------------------------------------------


class AddressError(ValueError):
    """Text that is not an address on the chosen network; `str()` says why, for the user."""


# (currency, network) -> how the network is named to a person; the pairs of the
# `networks` table.
NETWORK_LABELS: dict[tuple[str, str], str] = {
    ("BTC", "BTC"): "Bitcoin",
    ("LTC", "LTC"): "Litecoin",
    ("ETH", "ERC20"): "Ethereum (ERC20)",
    ("USDT", "ERC20"): "Ethereum (ERC20)",
    ("USDT", "BEP20"): "BNB Smart Chain (BEP20)",
    ("USDT", "TRC20"): "Tron (TRC20)",
}

# Longer than any address we accept; keeps base58's quadratic decoding cheap.
_MAX_ADDRESS_LENGTH = 128
_BASE58 = re.compile(r"[1-9A-HJ-NP-Za-km-z]+")
_EVM = re.compile(r"0x([0-9a-fA-F]{40})")

# Bech32 and bech32m, written out from BIP-173 and BIP-350 (the reference
# decoder, step for step): the checksum is a few lines, and the `bech32`
# package predates bech32m. Only decoding is needed.
_BECH32_ALPHABET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_CONST = 1  # BIP-173: witness version 0
_BECH32M_CONST = 0x2BC830A3  # BIP-350: witness versions 1 to 16
_BECH32_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _bech32_polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, generator in enumerate(_BECH32_GENERATOR):
            if (top >> i) & 1:
                chk ^= generator
    return chk


def _bech32_hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def bech32_decode(text: str) -> tuple[str, list[int], int]:
    """(hrp, 5-bit data without the checksum, checksum constant) of a bech32/bech32m string.

    The constant is 1 for bech32 (BIP-173) and 0x2BC830A3 for bech32m (BIP-350).
    """
    if any(not 33 <= ord(c) <= 126 for c in text):
        raise AddressError("The address contains characters addresses never use.")
    if text.lower() != text and text.upper() != text:
        raise AddressError("The address mixes capital and small letters; it has a typo.")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text) or len(text) > 90:
        raise AddressError("The address has the wrong length.")
    hrp = text[:pos]
    data = []
    for c in text[pos + 1 :]:
        index = _BECH32_ALPHABET.find(c)
        if index < 0:
            raise AddressError(f"The address contains {c!r}, which such addresses never use.")
        data.append(index)
    const = _bech32_polymod(_bech32_hrp_expand(hrp) + data)
    if const not in (_BECH32_CONST, _BECH32M_CONST):
        raise AddressError("The address has a typo: its checksum does not match.")
    return hrp, data[:-6], const


def _five_to_eight_bits(data: list[int]) -> bytes:
    acc = bits = 0
    out = bytearray()
    for value in data:
        acc = ((acc << 5) | value) & 0xFFF
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    # BIP-173: at most 4 bits of padding, all zero.
    if bits >= 5 or (acc << (8 - bits)) & 0xFF:
        raise AddressError("The address is malformed (bad padding).")
    return bytes(out)


def segwit_decode(hrp: str, text: str) -> tuple[int, bytes]:
    """(witness version, witness program) of a segwit address, by BIP-173 and BIP-350.

    `segwit_decode("bc", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4")`
    -> `(0, bytes.fromhex("751e76e8199196d454941c45d1b3a323f1433bd6"))`.
    """
    got, data, const = bech32_decode(text)
    if got != hrp:
        raise AddressError(f"The address should start with {hrp}1.")
    if not data or data[0] > 16:
        raise AddressError("The address has no valid witness version.")
    version, program = data[0], _five_to_eight_bits(data[1:])
    if not 2 <= len(program) <= 40:
        raise AddressError("The address has the wrong length.")
    if version == 0 and len(program) not in (20, 32):
        raise AddressError("The address has the wrong length.")
    # Version 0 uses bech32, later versions bech32m (BIP-350).
    if (version == 0) != (const == _BECH32_CONST):
        raise AddressError("The address has a typo: its checksum does not match.")
    return version, program


def _base58check(text: str) -> bytes:
    """The payload of a base58check string (double-SHA-256 checksum verified)."""
    if not _BASE58.fullmatch(text):
        raise AddressError(
            "The address contains characters this kind of address never uses (0, O, I, l, ...)."
        )
    try:
        return base58.b58decode_check(text)
    except ValueError:
        raise AddressError("The address has a typo: its checksum does not match.") from None


# Test networks' prefixes and base58 versions (Bitcoin's and Litecoin's): worth naming,
# since a testnet address is a common paste and its coins are not real.
_TESTNET_HRPS = ("tb1", "bcrt1", "tltc1", "rltc1")
_TESTNET_VERSIONS = {0x6F, 0xC4, 0x3A}


def _utxo_address(text: str, hrp: str, versions: set[int], name: str) -> str:
    """A Bitcoin-style address: bech32/bech32m with `hrp`, or base58check with `versions`."""
    testnet = AddressError(f"This is a {name} testnet address; it cannot receive real coins.")
    if text.lower().startswith(_TESTNET_HRPS):
        raise testnet
    if text.lower().startswith(hrp + "1"):
        version, program = segwit_decode(hrp, text)
        # Outputs of other versions or sizes cannot be spent yet: coins sent there are lost.
        if not (version == 0 or (version == 1 and len(program) == 32)):
            raise AddressError(
                f"This {name} address uses a SegWit version that wallets cannot spend yet."
            )
        return text.lower()
    payload = _base58check(text)
    if len(payload) == 21 and payload[0] in _TESTNET_VERSIONS:
        raise testnet
    if len(payload) != 21 or payload[0] not in versions:
        raise AddressError(f"This is not a {name} address.")
    return text


def eip55(hex40: str) -> str:
    """The EIP-55 mixed-case checksum form of 40 hex digits, with `0x`.

    Keccak-256 as Ethereum uses it (the original padding), not NIST SHA3-256.
    `eip55("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed")`
    -> `"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"`.
    """
    lower = hex40.lower()
    digest = keccak.new(digest_bits=256, data=lower.encode("ascii")).hexdigest()
    return "0x" + "".join(
        c.upper() if c.isalpha() and int(h, 16) >= 8 else c
        for c, h in zip(lower, digest, strict=False)
    )


def _evm_address(text: str) -> str:
    m = _EVM.fullmatch(text)
    if m is None:
        raise AddressError("An address here is 0x followed by 40 hex digits (0-9, a-f).")
    digits = m.group(1)
    checksummed = eip55(digits)
    is_mixed = digits != digits.lower() and digits != digits.upper()
    if is_mixed and text != checksummed:
        raise AddressError("The address has a typo: its capital letters do not match its checksum.")
    if int(digits, 16) == 0:
        raise AddressError("That is the zero address: whatever is sent there is burned.")
    # One spelling per address, so the same address is never saved twice.
    return checksummed


def _tron_address(text: str) -> str:
    if len(text) != 34 or not text.startswith("T"):
        raise AddressError("A Tron address is 34 characters and starts with T.")
    payload = _base58check(text)
    if len(payload) != 21 or payload[0] != 0x41:
        raise AddressError("This is not a Tron address.")
    if not any(payload[1:]):
        raise AddressError("That is the zero address: whatever is sent there is burned.")
    return text


_VALIDATORS = {
    ("BTC", "BTC"): lambda a: _utxo_address(a, "bc", {0x00, 0x05}, "Bitcoin"),
    ("LTC", "LTC"): lambda a: _utxo_address(a, "ltc", {0x30, 0x32, 0x05}, "Litecoin"),
    ("ETH", "ERC20"): _evm_address,
    ("USDT", "ERC20"): _evm_address,
    ("USDT", "BEP20"): _evm_address,
    ("USDT", "TRC20"): _tron_address,
}

# For "this looks like a ... address": the usual mix-up is pasting another chain's address.
_LOOKALIKES = (
    ("BTC", "BTC", "a Bitcoin"),
    ("LTC", "LTC", "a Litecoin"),
    ("USDT", "ERC20", "an Ethereum-style (0x...)"),
    ("USDT", "TRC20", "a Tron"),
)


def validate_address(currency: str, network: str, address: str) -> str:
    """The address, normalised, when it is a valid destination for `currency` on `network`.

    Stripped; bech32 lowercased; 0x addresses in their EIP-55 form (one
    spelling per address). `validate_address("USDT", "TRC20",
    " TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t ")` -> `"TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"`.
    Raises AddressError saying why not, naming the network the address seems
    to belong to when it is another one's.
    """
    validator = _VALIDATORS.get((currency, network))
    if validator is None:
        raise AddressError(f"{currency} cannot be sent on the {network} network here.")
    text = address.strip()
    if not text:
        raise AddressError("Please enter an address.")
    if len(text) > _MAX_ADDRESS_LENGTH:
        raise AddressError("That is far too long to be an address.")
    try:
        return validator(text)
    except AddressError as refused:
        label = NETWORK_LABELS[(currency, network)]
        for other_currency, other_network, name in _LOOKALIKES:
            other = _VALIDATORS[(other_currency, other_network)]
            if other is validator or NETWORK_LABELS[(other_currency, other_network)] == label:
                continue
            try:
                other(text)
            except AddressError:
                continue
            raise AddressError(f"This looks like {name} address, not a {label} one.") from refused
        raise


# --- Nigerian bank accounts ---------------------------------------------------


class BankAccountError(ValueError):
    """Not a NUBAN account number or a bank code; `str()` says why, for the user."""


def validate_nuban(account_number: str) -> str:
    """A NUBAN: exactly 10 digits, spaces allowed (`"0123 456 789"` -> `"0123456789"`).

    The check digit is not verified: it depends on the bank's CBN code, and the
    provider's name check (which every bank-account flow does) catches a typo anyway.
    """
    digits = account_number.replace(" ", "").strip()
    if not digits:
        raise BankAccountError("Please enter the 10-digit account number.")
    if not (digits.isascii() and digits.isdigit()):
        raise BankAccountError("An account number has only digits (0-9).")
    if len(digits) != 10:
        raise BankAccountError(f"An account number has 10 digits; this one has {len(digits)}.")
    return digits


def validate_bank_code(code: str) -> str:
    """A bank's NIP code by shape only: 3 to 6 digits (`"058"`, `"50211"`, `"999992"`).

    Whether such a bank exists is the `banks` table's to say.
    """
    text = code.strip()
    if not (text.isascii() and text.isdigit() and 3 <= len(text) <= 6):
        raise BankAccountError("A bank code is 3 to 6 digits.")
    return text
