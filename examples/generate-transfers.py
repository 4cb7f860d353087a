#!/usr/bin/env python3
"""Writes examples/transfers.dk.jsonl: TransferRequested `data` objects for core-sim and the demo.

One JSON object per line, exactly the `data` of a TransferRequested on core.dk.payments.v1
(docs/streams.md). Deterministic: the same --seed and --count give the same bytes, so the file
can be regenerated and diffed. Python 3 standard library only.

About 5% of the transfers are invalid on purpose, one kind in five each, to show every
rejection path (expected outcome in brackets):
  - a creditor IBAN with wrong MOD-97 check digits     [TransferRejected AC01, by the adapter]
  - currency EUR instead of DKK, from the core's EUR account acc-dk-eur-0001
                                                        [TransferRejected AM03, by the adapter]
  - an amount over the 50,000,000 minor units limit     [TransferRejected AM02, by the adapter]
  - a creditor BBAN ending in 0004 (closed at the mock) [TransferRejected AC04, by the clearing]
  - a creditor BBAN ending in 0006 (blocked at the mock)[TransferRejected AC06, by the clearing]
Every other transfer is valid and should end TransferSucceeded (possibly after TransferPending,
retries or a TransferUnderInvestigation, depending on the mock's fault profile).

    python3 examples/generate-transfers.py                  # rewrites examples/transfers.dk.jsonl
    python3 examples/generate-transfers.py --count 1000 --seed 7 --output /tmp/t.jsonl
    python3 examples/generate-transfers.py --summary        # prints the expected outcome counts
"""

import argparse
import datetime
import json
import pathlib
import random
import sys
import uuid

CURRENCY = "DKK"
AMOUNT_LIMIT_MINOR = 50_000_000  # config/dk.json country.amount_limit_minor (inclusive)
IBAN_LENGTH_DK = 18  # "DK" + 2 check digits + 4-digit registration number + 10-digit account
CORE_ACCOUNTS = 40  # distinct debtor accounts at the core
START = datetime.datetime(2026, 11, 26, 8, 0, 0, tzinfo=datetime.timezone.utc)
MOCK_CLOSED_SUFFIX = "0004"  # clearing-mock: creditor account ending 0004 -> RJCT AC04
MOCK_BLOCKED_SUFFIX = "0006"  # clearing-mock: creditor account ending 0006 -> RJCT AC06

# Real Danish bank registration numbers are 4 digits; these are plausible, not a directory.
REGISTRATION_NUMBERS = ["0040", "1551", "2100", "3000", "5301", "6016", "7670", "9070", "9280"]
FIRST_NAMES = ["Anne", "Mette", "Søren", "Lars", "Kirsten", "Jens", "Ida", "Mads", "Freja",
               "Rasmus", "Sofie", "Niels", "Astrid", "Henrik", "Karen", "Emil", "Maja", "Ole"]
LAST_NAMES = ["Jensen", "Nielsen", "Hansen", "Pedersen", "Andersen", "Christensen", "Larsen",
              "Sørensen", "Rasmussen", "Jørgensen", "Madsen", "Kristensen", "Olsen", "Thomsen"]
COMPANIES = ["Nordlys ApS", "Havnens Bageri", "Fjordvej Boligforening", "Grøn Energi A/S",
             "Kattegat Tømrer ApS", "Aarhus Cykler", "Skovly Tandklinik", "Vestkyst Forsikring"]
REMITTANCE = ["Invoice {n}", "Rent {month}", "Membership {year}", "Order {n}", "Loan repayment",
              "Gift", "Electricity {month}", "Refund order {n}", ""]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]

INVALID_KINDS = ["bad_iban_check", "currency_eur", "amount_over_limit", "creditor_closed",
                 "creditor_blocked"]
EXPECTED_OUTCOME = {
    None: "TransferSucceeded",
    "bad_iban_check": "TransferRejected AC01",
    "currency_eur": "TransferRejected AM03",
    "amount_over_limit": "TransferRejected AM02",
    "creditor_closed": "TransferRejected AC04",
    "creditor_blocked": "TransferRejected AC06",
}


def mod97(digits: str) -> int:
    remainder = 0
    for c in digits:
        remainder = (remainder * 10 + int(c)) % 97
    return remainder


def iban_numeric(iban: str) -> str:
    """ISO 13616: the first four characters moved to the end, letters as 10..35."""
    rearranged = iban[4:] + iban[:4]
    return "".join(str(int(c, 36)) for c in rearranged)


def iban_is_valid(iban: str) -> bool:
    return len(iban) == IBAN_LENGTH_DK and iban.startswith("DK") and iban[2:].isdigit() \
        and mod97(iban_numeric(iban)) == 1


def dk_iban(registration: str, account: str) -> str:
    bban = registration + account
    check = 98 - mod97(iban_numeric("DK00" + bban))
    iban = f"DK{check:02d}{bban}"
    assert iban_is_valid(iban), iban
    return iban


def with_wrong_check_digits(iban: str) -> str:
    check = int(iban[2:4])
    wrong = f"{(check + 1) % 100:02d}"  # check digits are unique mod 97: any other fails
    broken = iban[:2] + wrong + iban[4:]
    assert not iban_is_valid(broken), broken
    return broken


class Generator:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def account_number(self, suffix: str = "") -> str:
        """10 digits; never ending in the mock's special suffixes unless asked to."""
        while True:
            number = f"{self.rng.randrange(10**9, 10**10)}"
            if suffix:
                return number[: 10 - len(suffix)] + suffix
            if number[-4:] not in (MOCK_CLOSED_SUFFIX, MOCK_BLOCKED_SUFFIX):
                return number

    def account(self, scheme: str, suffix: str = "") -> dict:
        registration = self.rng.choice(REGISTRATION_NUMBERS)
        number = self.account_number(suffix)
        if scheme == "IBAN":
            return {"scheme": "IBAN", "id": dk_iban(registration, number)}
        return {"scheme": "BBAN", "id": f"{registration}-{number}"}

    def person(self) -> str:
        return f"{self.rng.choice(FIRST_NAMES)} {self.rng.choice(LAST_NAMES)}"

    def creditor_name(self) -> str:
        return self.rng.choice(COMPANIES) if self.rng.random() < 0.4 else self.person()

    def amount_minor(self) -> int:
        # Mostly everyday payments, some larger ones, a few near the limit.
        roll = self.rng.random()
        if roll < 0.70:
            return self.rng.randrange(100, 500_000)  # 1 to 5,000 DKK
        if roll < 0.95:
            return self.rng.randrange(500_000, 5_000_000)
        return self.rng.randrange(5_000_000, AMOUNT_LIMIT_MINOR + 1)

    def remittance(self, index: int) -> str:
        template = self.rng.choice(REMITTANCE)
        return template.format(n=10_000 + index, month=self.rng.choice(MONTHS),
                               year=START.year + 1)

    def uuid4(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


def core_accounts(gen: Generator) -> list:
    accounts = []
    for i in range(1, CORE_ACCOUNTS + 1):
        scheme = "BBAN" if gen.rng.random() < 0.7 else "IBAN"
        accounts.append({"account_id": f"acc-dk-{i:04d}",
                         "debtor": {"name": gen.person(), "account": gen.account(scheme)}})
    return accounts


def invalid_positions(gen: Generator, count: int) -> dict:
    """About 5% of the positions, the kinds spread evenly, at reproducible places."""
    invalid_total = max(len(INVALID_KINDS), round(count * 0.05)) if count >= 20 else 0
    positions = gen.rng.sample(range(count), invalid_total)
    return {p: INVALID_KINDS[i % len(INVALID_KINDS)] for i, p in enumerate(sorted(positions))}


def transfer(gen: Generator, index: int, accounts: list, foreign: dict,
             at: datetime.datetime, invalid: str | None) -> dict:
    payer = gen.rng.choice(accounts)
    creditor_scheme = "IBAN" if gen.rng.random() < 0.5 else "BBAN"
    creditor_account = gen.account(creditor_scheme)
    currency = CURRENCY
    amount = gen.amount_minor()
    if invalid == "bad_iban_check":
        creditor_account = gen.account("IBAN")
        creditor_account["id"] = with_wrong_check_digits(creditor_account["id"])
    elif invalid == "currency_eur":
        # From the core's own EUR account: core-sim opens each account in the currency it is
        # first debited in, so an EUR debit must never hit one of the DKK accounts.
        payer = foreign
        currency = "EUR"
    elif invalid == "amount_over_limit":
        amount = gen.rng.randrange(AMOUNT_LIMIT_MINOR + 1, AMOUNT_LIMIT_MINOR * 3 // 2)
    elif invalid == "creditor_closed":
        creditor_account = gen.account("BBAN", MOCK_CLOSED_SUFFIX)
    elif invalid == "creditor_blocked":
        creditor_account = gen.account("BBAN", MOCK_BLOCKED_SUFFIX)
    return {
        "transfer_id": gen.uuid4(),
        "account_id": payer["account_id"],
        "amount": {"minor_units": amount, "currency": currency},
        "debtor": payer["debtor"],
        "creditor": {"name": gen.creditor_name(), "account": creditor_account},
        "remittance_info": gen.remittance(index),
        "requested_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def generate(seed: int, count: int) -> list:
    gen = Generator(seed)
    accounts = core_accounts(gen)
    foreign = {"account_id": "acc-dk-eur-0001",
               "debtor": {"name": gen.person(), "account": gen.account("IBAN")}}
    invalid = invalid_positions(gen, count)
    at = START
    rows = []
    for index in range(count):
        at += datetime.timedelta(seconds=gen.rng.randrange(1, 30))
        rows.append((transfer(gen, index, accounts, foreign, at, invalid.get(index)),
                     invalid.get(index)))
    return rows


def main() -> int:
    here = pathlib.Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--output", type=pathlib.Path, default=here / "transfers.dk.jsonl",
                        help="'-' for stdout")
    parser.add_argument("--summary", action="store_true",
                        help="print the expected outcome per kind on stderr")
    args = parser.parse_args()
    if not 1 <= args.count <= 1_000_000:
        parser.error("--count must be in [1, 1000000]")

    rows = generate(args.seed, args.count)
    text = "".join(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"
                   for data, _ in rows)
    if str(args.output) == "-":
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    if args.summary:
        counts: dict = {}
        for _, kind in rows:
            counts[EXPECTED_OUTCOME[kind]] = counts.get(EXPECTED_OUTCOME[kind], 0) + 1
        for outcome, n in sorted(counts.items()):
            print(f"{n:6d}  {outcome}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
