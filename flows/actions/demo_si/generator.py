"""Deterministic synthetic accounts for the demo information system.

The same seed gives the same people, SIRETs, postcodes and account references whatever
the day; dates and amounts are laid out relative to the day the database is built, so
that due dates are ahead, the last declaration is recent and "this year's turnover"
means this year. Names, addresses and SIRETs are made up (SIRETs are checksum-valid and
may by chance equal a real one: they belong to no one here).
"""

from __future__ import annotations

import random
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import date, timedelta

from flows.actions.ceilings import ceilings_for
from flows.actions.demo_si.db import SCHEMA, SCHEMA_VERSION, siret_key
from flows.actions.demo_si.periods import Period, deadline, periods_between
from flows.identifiers import luhn_check_digit

SEED = 2026
LOCKED_UNTIL_STAFF = "2999-12-31T00:00:00+00:00"

# Demo case -> what the account shows. Tests and demos pick accounts by case
# (flows.actions.demo_si.demo_accounts), never by hard-coded SIRET.
CASES: dict[str, str] = {
    "up_to_date": "nothing due, declarations and payments up to date, online space",
    "no_online_space": "up to date, no online space: attestations go by post",
    "declaration_missing": "the last turnover declaration due was not made (overdue)",
    "payment_rejected": "the last direct debit was rejected by the bank; that amount is owed",
    "debt_due": "an amount owed with a due date still ahead",
    "suspended": "online access suspended: only an agent can restore it",
    "address_unknown": "mail came back (NPAI): the business address must be updated",
    "closed": "business ceased: the account is closed",
    "micro_below_ceiling": "micro-entrepreneur, turnover this year between 30 and 60 % of the ceiling",
    "micro_near_ceiling": "micro-entrepreneur, turnover this year between 83 and 95 % of the ceiling",
    "micro_above_ceiling": "micro-entrepreneur, turnover this year above the ceiling",
    "mixed_near_services_ceiling": "mixed activity: total far below, services part at 85-95 % of theirs",
    "not_micro": "not a micro-entrepreneur (regular regime): the ceilings do not apply",
    "locked": "phone identification locked for this account (by staff); refused even with the right postcode",
}


@dataclass(frozen=True)
class _Spec:
    case: str
    count: int
    status: str = "up_to_date"
    activities: tuple[str, ...] = ("sales", "services", "liberal", "mixed")
    ratio: tuple[float, float] = (0.10, 0.55)   # turnover / ceiling
    year_to_date: bool = False                  # ratio reached already this year (threshold cases)
    regime: str = "micro"


PLAN: tuple[_Spec, ...] = (
    _Spec("up_to_date", 12),
    _Spec("no_online_space", 3),
    _Spec("declaration_missing", 4, status="declaration_missing"),
    _Spec("payment_rejected", 4, status="payment_rejected"),
    _Spec("debt_due", 4, status="debt_due"),
    _Spec("suspended", 3, status="suspended"),
    _Spec("address_unknown", 4, status="address_unknown"),
    _Spec("closed", 3, status="closed"),
    _Spec("micro_below_ceiling", 4, ratio=(0.30, 0.60), year_to_date=True,
          activities=("sales", "services", "liberal", "mixed")),
    _Spec("micro_near_ceiling", 4, ratio=(0.83, 0.95), year_to_date=True,
          activities=("services", "sales", "liberal", "mixed")),
    _Spec("micro_above_ceiling", 3, ratio=(1.05, 1.25), year_to_date=True,
          activities=("services", "sales", "liberal")),
    _Spec("mixed_near_services_ceiling", 2, ratio=(0.85, 0.95), year_to_date=True, activities=("mixed",)),
    _Spec("not_micro", 3, ratio=(1.3, 2.5), regime="reel"),
    _Spec("locked", 2),
)

FIRST_NAMES = (
    "Sophie", "Julien", "Nathalie", "Thierry", "Camille", "Karim", "Isabelle", "Mathieu", "Aurélie",
    "Mehdi", "Chantal", "Bernard", "Élodie", "Yannick", "Fatima", "Gilles", "Laetitia", "Pascal",
    "Manon", "Hugo", "Martine", "Jean-Pierre", "Sandrine", "Lucas", "Amina", "Philippe", "Céline",
    "Nicolas", "Brigitte", "Théo", "Monique", "Antoine", "Inès", "Didier", "Valérie", "Rémi",
)
LAST_NAMES = (
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
    "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "David", "Bertrand", "Roux",
    "Vincent", "Fournier", "Morel", "Girard", "André", "Lefèvre", "Mercier", "Dupont", "Lambert",
    "Bonnet", "François", "Martinez", "Benali", "Nguyen", "Le Gall", "Kerbrat", "Etcheverry", "Haddad",
)
TRADES = {
    "sales": ("vente de bijoux en ligne", "épicerie fine", "brocante", "chambres d'hôtes",
              "vente de vêtements sur les marchés", "vente de miel"),
    "services": ("plomberie", "livraison à vélo", "coiffure à domicile", "réparation informatique",
                 "entretien de jardins", "transport de personnes (VTC)"),
    "liberal": ("graphisme", "traduction", "développement web", "coaching sportif", "formation",
                "conseil en communication"),
    "mixed": ("vente et réparation de vélos", "vente et pose de cuisines", "pâtisserie et ateliers",
              "vente de plantes et entretien de jardins"),
}
PLACES = (
    ("75011", "Paris"), ("75018", "Paris"), ("69003", "Lyon"), ("13005", "Marseille"),
    ("31000", "Toulouse"), ("33800", "Bordeaux"), ("44000", "Nantes"), ("59000", "Lille"),
    ("67000", "Strasbourg"), ("35000", "Rennes"), ("34070", "Montpellier"), ("21000", "Dijon"),
    ("63000", "Clermont-Ferrand"), ("87000", "Limoges"), ("29200", "Brest"), ("97400", "Saint-Denis"),
    ("20000", "Ajaccio"), ("64100", "Bayonne"), ("86000", "Poitiers"), ("57000", "Metz"),
    ("06300", "Nice"), ("38000", "Grenoble"), ("45000", "Orléans"), ("80000", "Amiens"),
)
STREETS = (
    "rue de la République", "avenue Jean Jaurès", "rue Victor Hugo", "place de la Mairie",
    "rue des Écoles", "boulevard Gambetta", "chemin des Vignes", "rue du Moulin", "allée des Tilleuls",
    "rue Pasteur", "impasse des Lilas", "route de la Gare",
)
# Demo contribution rates (2025 figures, DOMAIN.md) so that payments look like what a
# declaration costs; the bot never computes contributions from these.
RATES = {"sales": 0.123, "services": 0.212, "liberal": 0.232}


def _siret(rng: random.Random) -> str:
    siren8 = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(7))
    siren = siren8 + luhn_check_digit(siren8)
    nic4 = f"{rng.randint(1, 9):04d}"
    return siren + nic4 + luhn_check_digit(siren + nic4)


def _euros(rng: random.Random, low: int, high: int) -> int:
    """Cents of a whole-euro amount: declarations are made in whole euros."""
    return rng.randint(low, high) * 100


def _spread(rng: random.Random, total_cents: int, n: int, zero_share: float = 0.0) -> list[int]:
    """`total_cents` spread over n periods in whole euros, some periods maybe at zero."""
    if n == 0:
        return []
    weights = [0.0 if rng.random() < zero_share else rng.uniform(0.7, 1.3) for _ in range(n)]
    if not any(weights):
        weights[-1] = 1.0
    scale = sum(weights)
    amounts = [int(total_cents * w / scale) // 100 * 100 for w in weights]
    # Rounding leftovers go to the biggest period, so the year's total stays the target.
    amounts[weights.index(max(weights))] += (total_cents - sum(amounts)) // 100 * 100
    return amounts


def _limit(activity: str, year: int) -> int:
    sales, services = ceilings_for(year)
    return sales if activity in ("sales", "mixed") else services


def _contribution(activity: str, sales_cents: int, services_cents: int) -> int:
    services_rate = RATES["liberal"] if activity == "liberal" else RATES["services"]
    return round(sales_cents * RATES["sales"] + services_cents * services_rate)


def _year_amounts(rng: random.Random, activity: str, spec: _Spec, ratio: float, year: int,
                  periods: list[Period], months_per_period: int) -> list[tuple[int, int]]:
    """(sales, services) cents per declared period of `year`."""
    if not periods:
        return []
    sales_limit, services_limit = ceilings_for(year)
    if spec.year_to_date:
        share = 1.0   # the ratio is reached with the periods declared so far
    else:
        share = len(periods) * months_per_period / 12
    zero_share = 0.0 if spec.year_to_date or spec.status == "payment_rejected" else 0.08
    if activity == "mixed":
        if spec.case == "mixed_near_services_ceiling":
            services_total = int(ratio * services_limit * share)
            sales_total = int(rng.uniform(0.10, 0.25) * sales_limit * share)
        else:
            total = int(ratio * sales_limit * share)
            services_total = int(total * rng.uniform(0.15, 0.25))
            sales_total = total - services_total
        sales = _spread(rng, sales_total, len(periods), zero_share)
        services = _spread(rng, services_total, len(periods), zero_share)
        return list(zip(sales, services, strict=True))
    amounts = _spread(rng, int(ratio * _limit(activity, year) * share), len(periods), zero_share)
    return [(a, 0) if activity == "sales" else (0, a) for a in amounts]


def _random_day(rng: random.Random, first: date, last: date) -> date:
    if last <= first:
        return first
    return first + timedelta(days=rng.randint(0, (last - first).days))


def _account(conn: sqlite3.Connection, salt: str, index: int, spec: _Spec, nth: int,
             today: date, seed: int, used_sirets: set[str]) -> None:
    who = random.Random(f"{seed}:identity:{index}")
    siret = _siret(who)
    while siret in used_sirets:
        siret = _siret(who)
    used_sirets.add(siret)
    first, last = who.choice(FIRST_NAMES), who.choice(LAST_NAMES)
    postcode, city = who.choice(PLACES)
    address = f"{who.randint(1, 120)} {who.choice(STREETS)}"
    ref = f"acc_{who.getrandbits(64):016x}"

    rng = random.Random(f"{seed}:data:{index}")
    activity = spec.activities[nth % len(spec.activities)]
    trade = rng.choice(TRADES[activity])
    frequency = "monthly" if spec.year_to_date else rng.choice(("quarterly", "quarterly", "monthly"))
    previous_year_start = date(today.year - 1, 1, 1)
    created_on = _random_day(rng, date(today.year - 9, 1, 1), date(today.year - 2, 12, 31))
    ratio = rng.uniform(*spec.ratio)
    online_space = spec.case not in ("no_online_space", "closed") and not (
        spec.status == "address_unknown" and nth % 2 == 1)

    periods = list(periods_between(frequency, previous_year_start, today))
    closed_on = None
    if spec.status == "closed":
        # Ceased at the end of a period already declared: nothing is due after it.
        ended = [p for p in periods if deadline(p) < today and p[0] >= previous_year_start + timedelta(days=90)]
        last_period = rng.choice(ended)
        closed_on = last_period[1]
        periods = [p for p in periods if p[0] <= last_period[0]]
    due = [p for p in periods if deadline(p) < today]
    just_ended = [p for p in periods if p[1] < today <= deadline(p)]
    if spec.status == "closed":
        declared = list(periods)
    elif spec.status == "declaration_missing":
        declared = due[:-1]
    elif spec.status == "payment_rejected":
        declared = due
    else:
        declared = due + [p for p in just_ended if rng.random() < 0.5]

    months = 1 if frequency == "monthly" else 3
    rows: list[tuple[Period, date, int, int]] = []
    for year in (today.year - 1, today.year):
        in_year = [p for p in declared if p[0].year == year]
        for p, (sales, services) in zip(in_year, _year_amounts(rng, activity, spec, ratio, year, in_year, months),
                                        strict=True):
            latest = min(deadline(p), today - timedelta(days=1))
            declared_on = _random_day(rng, p[1] + timedelta(days=1), max(latest, p[1] + timedelta(days=1)))
            rows.append((p, declared_on, sales, services))

    status_since = None
    if spec.status == "declaration_missing":
        status_since = deadline(due[-1]) + timedelta(days=1)
    elif spec.status in ("suspended", "debt_due"):
        status_since = today - timedelta(days=rng.randint(3, 60))
    elif spec.status == "address_unknown":
        status_since = today - timedelta(days=rng.randint(20, 200))
    elif spec.status == "closed":
        status_since = closed_on

    cur = conn.execute(
        "INSERT INTO accounts (ref, siret, siret_key, business_name, first_name, last_name, trade,"
        " address_line, postcode, city, activity, regime, frequency, created_on, status, status_since,"
        " closed_on, online_space, demo_case) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (ref, siret, siret_key(salt, siret), f"{first} {last}", first, last, trade, address, postcode, city,
         activity, spec.regime, frequency, created_on.isoformat(), spec.status,
         status_since.isoformat() if status_since else None, closed_on.isoformat() if closed_on else None,
         int(online_space), spec.case),
    )
    account_id = cur.lastrowid
    for i, (p, declared_on, sales, services) in enumerate(rows):
        conn.execute(
            "INSERT INTO declarations (account_id, period_start, period_end, declared_on, sales_cents,"
            " services_cents) VALUES (?,?,?,?,?,?)",
            (account_id, p[0].isoformat(), p[1].isoformat(), declared_on.isoformat(), sales, services),
        )
        amount = _contribution(activity, sales, services)
        if amount <= 0:
            continue
        rejected = spec.status == "payment_rejected" and i == len(rows) - 1
        paid_on = declared_on
        if rejected:
            paid_on = min(declared_on + timedelta(days=rng.randint(3, 8)), today)
            conn.execute("UPDATE accounts SET status_since = ? WHERE id = ?", (paid_on.isoformat(), account_id))
            conn.execute(
                "INSERT INTO debts (account_id, amount_cents, due_on, reason) VALUES (?,?,?,?)",
                (account_id, amount, deadline(p).isoformat(), "prélèvement rejeté"),
            )
        conn.execute(
            "INSERT INTO payments (account_id, amount_cents, paid_on, outcome) VALUES (?,?,?,?)",
            (account_id, amount, paid_on.isoformat(), "rejected" if rejected else "received"),
        )
    if spec.status == "debt_due":
        conn.execute(
            "INSERT INTO debts (account_id, amount_cents, due_on, reason) VALUES (?,?,?,?)",
            (account_id, _euros(rng, 250, 2400) + rng.randint(0, 99),
             (today + timedelta(days=rng.randint(10, 40))).isoformat(), "régularisation"),
        )
    if spec.case == "locked":
        conn.execute(
            "INSERT INTO identification_guard (siret_key, failures, window_start, locked_until)"
            " VALUES (?, 3, ?, ?)",
            (siret_key(salt, siret), f"{today.isoformat()}T00:00:00+00:00", LOCKED_UNTIL_STAFF),
        )


def generate(conn: sqlite3.Connection, today: date, seed: int = SEED) -> int:
    """Creates the schema and the accounts in an empty database (a connection in
    autocommit mode, isolation_level=None); returns how many accounts."""
    conn.executescript(SCHEMA)
    conn.execute("BEGIN")
    salt = secrets.token_hex(16)   # per database: keys of typed SIRETs are not portable
    conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
        ("schema_version", SCHEMA_VERSION), ("seed", str(seed)), ("generated_on", today.isoformat()),
        ("siret_salt", salt),
    ])
    used: set[str] = set()
    index = 0
    for spec in PLAN:
        for nth in range(spec.count):
            _account(conn, salt, index, spec, nth, today, seed, used)
            index += 1
    conn.execute("COMMIT")
    return index
