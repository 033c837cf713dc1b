"""Actions served to the dialogue engine over the Rasa webhook protocol.

Slots in (tracker.slots) and out (slot events) are the contract with the flows:

- action_identify: in `siret`, `code_postal`, `identification_failures`; out `identified`,
  `account_id`, `identification_failures`, `identification_locked`, and `si_unavailable`
  when the SI cannot be reached. Silent: the flow says what happens next.
- action_account_summary, action_online_failure (`account_status`), action_threshold
  (`threshold_alert`), action_attestation_request (in `attestation_kind`; out
  `attestation_requested`): need `identified` and a valid `account_id` token; without
  them they say identification is needed and give no figure.
- action_declaration_deadline: the next declaration deadlines (no identification).

Nothing the request says about identity is believed. Whoever can reach the webhook
chooses every slot, so:

- `account_id` is an identification token, opaque to the dialogue: this server signs it
  when the SI verified the caller, and only such a token names the account an action
  reads. Format: `<ref>.<expiry>.<mac>`, ref = the SI's account reference (base64url,
  unpadded), expiry = Unix seconds (TOKEN_TTL_S after signing), mac = base64url of
  HMAC-SHA256(key, JSON ["callbot-identification-v1", sender_id, "<ref>.<expiry>"]) with
  key = HMAC-SHA256(CALLBOT_ACTIONS_SECRET, "callbot identification token key v1"). The
  sender_id is the call: a token copied into another call, expired or altered proves
  nothing, and neither does `identified: true` on its own.
- Failed identifications are counted here, per call (sender_id), in this process (so the
  server runs as a single process: flows/actions/server.py). The request's
  `identification_failures` can raise the count, never lower it.

Texts are French, in short sentences, with amounts and dates written for the TTS
("1 234,50 euros", "le 31 juillet 2026"). Nothing personal is logged: no SIRET, account
reference or token.
"""

from __future__ import annotations

import abc
import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import time
import unicodedata
from collections import OrderedDict
from datetime import date
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from flows.actions.ceilings import ceilings_for, score
from flows.actions.deadlines import deadlines_text
from flows.actions.information_system import (
    AccountStatus,
    AccountSummary,
    AttestationReceipt,
    HttpInformationSystem,
    InformationSystem,
    SiUnavailable,
    Turnover,
    UnknownAccount,
)
from flows.actions.spoken import euros, of_period, spoken_date
from flows.identifiers import normalize_digits, postcode_is_valid, siret_is_valid

log = logging.getLogger("callbot.actions")

MAX_TRIES_PER_CALL = 3
TOKEN_TTL_S = 2 * 3600
# A call's failure count is kept as long as a token lives; the bound keeps a flood of
# made-up call ids from growing the process without limit.
FAILURES_TTL_S = TOKEN_TTL_S
MAX_CALLS_TRACKED = 20_000
SECRET_ENV = "CALLBOT_ACTIONS_SECRET"

NEED_IDENTIFICATION = (
    "Pour vous donner cette information, je dois d'abord vérifier votre identité, "
    "avec votre numéro SIRET et le code postal de votre entreprise."
)
SI_UNAVAILABLE = (
    "Je ne peux pas consulter votre dossier pour le moment. "
    "Réessayez un peu plus tard, ou dites conseiller pour parler à quelqu'un."
)

ATTESTATION_NAMES = {
    "vigilance": "l'attestation de vigilance",
    "chiffre_affaires": "l'attestation de chiffre d'affaires déclaré",
    "formation": "l'attestation de contribution à la formation professionnelle",
}
# How the flows (or the caller's words) may name a kind -> the SI's kind.
ATTESTATION_ALIASES = {
    "vigilance": "vigilance", "attestation_de_vigilance": "vigilance", "regularite": "vigilance",
    "urssaf": "vigilance", "a_jour": "vigilance", "compte_a_jour": "vigilance",
    "chiffre_affaires": "chiffre_affaires", "chiffre_d_affaires": "chiffre_affaires", "ca": "chiffre_affaires",
    "formation": "formation", "formation_professionnelle": "formation", "cfp": "formation",
}

_si: InformationSystem | None = None


def information_system() -> InformationSystem:
    """The SI connector, configured from the environment once per process."""
    global _si
    if _si is None:
        _si = HttpInformationSystem.from_env()
    return _si


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1", "yes", "oui") if value is not None else False


def _claimed_failures(tracker: Tracker) -> int:
    value = tracker.get_slot("identification_failures")
    try:
        return max(0, int(value)) if value not in (None, "") else 0
    except (TypeError, ValueError):
        return 0


class CallFailures:
    """Failed identifications per call, kept by this process: the request cannot lower
    them. Entries go FAILURES_TTL_S after their last change, the oldest first when more
    than `max_calls` calls are tracked."""

    def __init__(self, ttl_s: float = FAILURES_TTL_S, max_calls: int = MAX_CALLS_TRACKED) -> None:
        self._ttl_s = ttl_s
        self._max_calls = max_calls
        self._entries: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def _expire(self, now: float) -> None:
        # Ordered by last change: the expired ones are at the front.
        while self._entries:
            sender_id, (_, changed) = next(iter(self._entries.items()))
            if now - changed < self._ttl_s:
                break
            del self._entries[sender_id]

    def get(self, sender_id: str) -> int:
        self._expire(time.monotonic())
        entry = self._entries.get(sender_id)
        return entry[0] if entry else 0

    def raise_to(self, sender_id: str, failures: int) -> int:
        """Sets the count to `failures` unless it is already higher; returns the count."""
        count = max(failures, self.get(sender_id))   # get() drops the expired entries
        self._entries[sender_id] = (count, time.monotonic())
        self._entries.move_to_end(sender_id)
        while len(self._entries) > self._max_calls:
            self._entries.popitem(last=False)
        return count


call_failures = CallFailures()


# ---------------------------------------------------------------- identification tokens


def _token_key() -> bytes | None:
    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        return None
    # Derived, not the secret itself: a token's MAC tells nothing usable on /webhook.
    return hmac.new(secret.encode(), b"callbot identification token key v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _token_mac(key: bytes, sender_id: str, payload: str) -> str:
    message = json.dumps(["callbot-identification-v1", sender_id, payload], separators=(",", ":"))
    return _b64(hmac.new(key, message.encode(), hashlib.sha256).digest())


def sign_identification(sender_id: str, ref: str, now: float | None = None) -> str:
    """The token proving that the caller of `sender_id` was verified as the holder of `ref`."""
    key = _token_key()
    if key is None:
        raise RuntimeError(f"{SECRET_ENV} is not set: identification tokens cannot be signed")
    expiry = int(time.time() if now is None else now) + TOKEN_TTL_S
    payload = f"{_b64(ref.encode())}.{expiry}"
    return f"{payload}.{_token_mac(key, sender_id, payload)}"


def verified_account(token: Any, sender_id: str, now: float | None = None) -> str | None:
    """The account reference in `token` when this server signed it for this call and it
    has not expired; None for anything else."""
    key = _token_key()
    if key is None or not isinstance(token, str) or not token.isascii():
        return None
    parts = token.split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    payload = f"{parts[0]}.{parts[1]}"
    # The MAC is compared in its encoded form: a re-spelled encoding of the same bytes
    # would not be the token that was signed.
    if not hmac.compare_digest(_token_mac(key, sender_id, payload).encode(), parts[2].encode()):
        return None
    if int(parts[1]) <= (time.time() if now is None else now):
        return None
    try:
        ref = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return ref or None


def identified_account(tracker: Tracker) -> str | None:
    """The account reference when the caller was identified in this call, else None."""
    if not _truthy(tracker.get_slot("identified")):
        return None
    return verified_account(tracker.get_slot("account_id"), tracker.sender_id)


def _not_identified(dispatcher: CollectingDispatcher) -> list[dict[str, Any]]:
    dispatcher.utter_message(text=NEED_IDENTIFICATION)
    return [SlotSet("identified", False), SlotSet("account_id", None)]


def _unavailable(dispatcher: CollectingDispatcher, action: str, error: Exception) -> list[dict[str, Any]]:
    log.warning("%s: information system unavailable (%s)", action, error)
    dispatcher.utter_message(text=SI_UNAVAILABLE)
    return [SlotSet("si_unavailable", True)]


# ---------------------------------------------------------------- texts


def summary_texts(s: AccountSummary, today: date) -> list[str]:
    texts = []
    if s.amount_due_cents > 0 and s.due_date and s.due_date < today:
        texts.append(f"Vous avez {euros(s.amount_due_cents)} à payer. "
                     f"Ce paiement était attendu le {spoken_date(s.due_date)}.")
    elif s.amount_due_cents > 0:
        when = f", au plus tard le {spoken_date(s.due_date)}" if s.due_date else ""
        texts.append(f"Vous avez {euros(s.amount_due_cents)} à payer{when}.")
    else:
        texts.append("Vous n'avez aucune somme à payer en ce moment.")
    if s.last_declaration:
        d = s.last_declaration
        amount = f"de {euros(d.turnover_cents)}" if d.turnover_cents else "nul"
        texts.append(f"Votre dernière déclaration, celle {of_period(d.period_start, d.period_end)}, "
                     f"a été faite le {spoken_date(d.declared_on)}, pour un chiffre d'affaires {amount}.")
    else:
        texts.append("Aucune déclaration n'est enregistrée sur votre compte.")
    if s.last_payment:
        texts.append(f"Le dernier paiement reçu est de {euros(s.last_payment.amount_cents)}, "
                     f"le {spoken_date(s.last_payment.received_on)}.")
    else:
        texts.append("Aucun paiement n'est enregistré sur votre compte.")
    n = s.next_deadline
    if n and n.overdue:
        texts.append(f"Votre déclaration {of_period(n.period_start, n.period_end)} est en retard : "
                     f"elle était à faire au plus tard le {spoken_date(n.date)}. "
                     "Faites-la dès que possible dans votre espace en ligne.")
    elif n:
        texts.append(f"Votre prochaine déclaration, celle {of_period(n.period_start, n.period_end)}, "
                     f"est à faire au plus tard le {spoken_date(n.date)}.")
    return texts


def status_texts(st: AccountStatus) -> list[str]:
    """Why an online action fails for this account, in plain words, and what to do."""
    if st.status == "declaration_missing" and st.missing_period:
        m = st.missing_period
        return [
            (f"Une déclaration manque sur votre compte : celle {of_period(m.period_start, m.period_end)}. "
            f"Elle était à faire au plus tard le {spoken_date(m.date)}."),
            "Tant qu'elle manque, certaines démarches en ligne sont bloquées, comme l'attestation de vigilance.",
            ("Faites cette déclaration dans votre espace en ligne. "
            "Si vous n'avez rien encaissé, déclarez zéro."),
        ]
    if st.status == "payment_rejected":
        texts = []
        if st.rejected_payment:
            r = st.rejected_payment
            texts.append(f"Votre banque a rejeté votre dernier prélèvement, de {euros(r.amount_cents)}, "
                         f"le {spoken_date(r.rejected_on)}.")
        else:
            texts.append("Votre banque a rejeté votre dernier prélèvement.")
        texts += [
            "Cette somme reste due. Tant qu'elle n'est pas réglée, certaines démarches en ligne sont bloquées.",
            "Vérifiez vos coordonnées bancaires dans votre espace en ligne, puis réglez la somme due.",
            "Si vous ne pouvez pas payer, dites conseiller.",
        ]
        return texts
    if st.status == "debt_due" and st.debt:
        return [
            (f"Une somme de {euros(st.debt.amount_cents)} est à payer sur votre compte, "
            f"au plus tard le {spoken_date(st.debt.due_date)}."),
            ("Réglez-la avant cette date dans votre espace en ligne. Si vous ne pouvez pas payer à temps, "
            "un conseiller peut étudier un délai avec vous."),
            "Je ne vois pas d'autre blocage. Si une démarche en ligne échoue encore, réessayez plus tard.",
        ]
    if st.status == "suspended":
        since = f" depuis le {spoken_date(st.since)}" if st.since else ""
        return [
            (f"L'accès en ligne à votre compte est suspendu{since}, par mesure de sécurité. "
            "C'est pour cela que vos démarches en ligne échouent."),
            ("Seul un conseiller peut rétablir l'accès, après avoir vérifié votre situation. "
            "Dites conseiller pour être mis en relation."),
        ]
    if st.status == "address_unknown":
        return [
            ("Le courrier envoyé à l'adresse de votre entreprise nous est revenu : "
            "cette adresse n'est plus valable."),
            "Tant qu'elle n'est pas corrigée, certaines démarches sont bloquées, comme les attestations.",
            ("Déclarez votre adresse actuelle sur le guichet unique des formalités des entreprises. "
            "Après un déménagement, votre numéro SIRET peut changer."),
        ]
    if st.status == "closed":
        since = f" depuis le {spoken_date(st.closed_on)}" if st.closed_on else ""
        return [
            f"Votre compte est clos{since}, après la cessation de votre activité.",
            ("Les démarches en ligne de cette activité ne sont plus possibles. "
            "Pour une question sur cette période, dites conseiller."),
        ]
    if st.status == "up_to_date":
        return [
            "Je ne vois aucun blocage sur votre compte : vos déclarations et vos paiements sont à jour.",
            ("Si une démarche en ligne échoue quand même, le problème vient sans doute du site : "
            "réessayez un peu plus tard. Si cela continue, dites conseiller."),
        ]
    return [("Je ne peux pas vous expliquer ce blocage moi-même. "
            "Un conseiller peut regarder votre dossier avec vous : dites conseiller.")]


def threshold_texts(t: Turnover) -> tuple[list[str], bool]:
    """(texts, alert): this year's declared turnover against the micro ceiling."""
    if t.regime != "micro":
        return ([("Votre entreprise n'est pas au régime de la micro-entreprise : "
                 "les plafonds de chiffre d'affaires de la micro-entreprise ne s'appliquent pas à vous.")], False)
    year = t.current_year
    if not year.periods_declared:
        # Early in the year nothing is declared yet: last year's total is what counts now.
        year = t.previous_year
    of_which = (f", dont {euros(year.services_cents)} de prestations de services"
                if t.activity == "mixed" and year.services_cents else "")
    if year is t.current_year:
        texts = [(f"Depuis le 1er janvier {year.year}, vous avez déclaré {euros(year.total_cents)} "
                 f"de chiffre d'affaires{of_which}.")]
    else:
        texts = [f"Vous n'avez encore rien déclaré pour {t.current_year.year}.",
                 f"En {year.year}, vous avez déclaré {euros(year.total_cents)} de chiffre d'affaires{of_which}."]
    s = score(t.activity, year.year, year.sales_cents, year.services_cents)
    sales_limit, services_limit = ceilings_for(year.year)
    if t.activity == "mixed":
        texts.append(f"Pour une activité mixte, le plafond {year.year} est de {euros(sales_limit)} au total, "
                     f"dont {euros(services_limit)} au plus pour les services.")
        texts.append(f"Vos prestations de services atteignent {s.percent} % de leur plafond."
                     if s.basis == "services" else f"Vous en êtes à {s.percent} % du plafond total.")
    else:
        texts.append(f"Le plafond {year.year} de la micro-entreprise pour votre activité est de "
                     f"{euros(s.limit_cents)}. Vous en êtes à {s.percent} %.")
    if s.exceeded:
        texts.append("Vous avez dépassé le plafond. Si vous le dépassez une seule année, vous restez "
                     "micro-entrepreneur. Au-delà de deux années de suite, vous quittez le régime de la "
                     "micro-entreprise le 1er janvier suivant.")
    elif s.alert:
        texts.append("Vous approchez du plafond. Au-delà de deux années de suite au-dessus, vous quittez "
                     "le régime de la micro-entreprise le 1er janvier suivant.")
    else:
        texts.append("Vous êtes en dessous du seuil d'alerte de 80 %.")
    return texts, s.alert


def attestation_kind(value: Any) -> str | None:
    """The SI's attestation kind for a slot value; "vigilance" when none was given."""
    if value in (None, ""):
        return "vigilance"
    text = unicodedata.normalize("NFKD", str(value)).encode("ascii", "ignore").decode().lower()
    key = "_".join(text.replace("'", " ").replace("-", " ").split())
    key = key.removeprefix("attestation_").removeprefix("de_").removeprefix("d_")
    return ATTESTATION_ALIASES.get(key)


def attestation_texts(r: AttestationReceipt) -> list[str]:
    name = ATTESTATION_NAMES.get(r.kind, "l'attestation")
    if r.recorded and r.delivery == "online":
        return [f"C'est noté : votre demande pour {name} est enregistrée.",
                f"Elle sera disponible dans votre espace en ligne sous {r.delay_hours} heures."]
    if r.recorded:
        days = max(1, round((r.delay_hours or 0) / 24))
        return [f"C'est noté : votre demande pour {name} est enregistrée.",
                f"Elle vous sera envoyée par courrier, à l'adresse de votre entreprise, sous {days} jours environ."]
    if r.refusal == "address_unknown":
        return [("Je ne peux pas enregistrer cette demande : le courrier envoyé à l'adresse de votre "
                "entreprise nous est revenu."),
                ("Mettez d'abord votre adresse à jour sur le guichet unique des formalités des entreprises. "
                "Ensuite, vous pourrez demander l'attestation.")]
    if r.refusal == "declaration_missing":
        return [(f"Je ne peux pas demander {name} pour l'instant : une déclaration de chiffre d'affaires "
                "manque sur votre compte."),
                "Faites cette déclaration dans votre espace en ligne, puis demandez à nouveau l'attestation."]
    if r.refusal == "payment_rejected":
        return [(f"Je ne peux pas demander {name} pour l'instant : un prélèvement a été rejeté, "
                "et la somme reste due."),
                "Réglez cette somme, puis demandez à nouveau l'attestation."]
    if r.refusal == "closed":
        return [f"Votre compte est clos : {name} ne peut plus être délivrée.",
                "Si vous avez besoin d'un autre document, dites conseiller."]
    return ["Je ne peux pas enregistrer cette demande moi-même. Dites conseiller pour être aidé."]


# ---------------------------------------------------------------- actions


class ActionDeclarationDeadline(Action):
    """The caller's next turnover declaration deadlines, computed from today's date."""

    def name(self) -> str:
        return "action_declaration_deadline"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        for text in deadlines_text(date.today()):
            dispatcher.utter_message(text=text)
        return []


class ActionIdentify(Action):
    """SIRET plus the postcode of the business address, checked by the SI. Silent: the
    flow says the outcome. A malformed SIRET or postcode counts as a failed try without
    asking the SI; after MAX_TRIES_PER_CALL failures in the call, the SI is not asked
    again and the flow hands over."""

    def name(self) -> str:
        return "action_identify"

    @staticmethod
    def _outcome(identified: bool, token: str | None, failures: int, locked: bool) -> list[dict[str, Any]]:
        return [SlotSet("identified", identified), SlotSet("account_id", token),
                SlotSet("identification_failures", failures), SlotSet("identification_locked", locked)]

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        sender_id = tracker.sender_id
        failures = call_failures.raise_to(sender_id, _claimed_failures(tracker))
        if failures >= MAX_TRIES_PER_CALL:
            return self._outcome(False, None, failures, True)
        siret = normalize_digits(tracker.get_slot("siret"))
        postcode = normalize_digits(tracker.get_slot("code_postal"))
        if not (siret_is_valid(siret) and postcode_is_valid(postcode)):
            failures = call_failures.raise_to(sender_id, failures + 1)
            log.info("%s: identification refused locally (malformed), try %d", sender_id, failures)
            return self._outcome(False, None, failures, failures >= MAX_TRIES_PER_CALL)
        try:
            result = await information_system().identify(siret, postcode)
        except SiUnavailable as e:
            return _unavailable(dispatcher, self.name(), e) + [
                SlotSet("identified", False), SlotSet("account_id", None)]
        if result.verified:
            try:
                token = sign_identification(sender_id, result.account_ref)
            except RuntimeError as e:   # started without the secret (not through server.py)
                return _unavailable(dispatcher, self.name(), e) + [
                    SlotSet("identified", False), SlotSet("account_id", None)]
            log.info("%s: identification verified", sender_id)
            return self._outcome(True, token, failures, False) + [SlotSet("si_unavailable", False)]
        failures = call_failures.raise_to(sender_id, failures + 1)
        locked = result.outcome == "locked" or failures >= MAX_TRIES_PER_CALL
        log.info("%s: identification %s, try %d", sender_id, result.outcome, failures)
        return self._outcome(False, None, failures, locked) + [SlotSet("si_unavailable", False)]


class AccountAction(Action, abc.ABC):
    """An action on the identified caller's own account: refused without identification,
    whatever the dialogue asks, and polite when the information system does not answer."""

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        ref = identified_account(tracker)
        if ref is None:
            return _not_identified(dispatcher)
        try:
            return await self.answer(ref, dispatcher, tracker)
        except UnknownAccount:
            return _not_identified(dispatcher)
        except SiUnavailable as e:
            return _unavailable(dispatcher, self.name(), e)

    @abc.abstractmethod
    async def answer(self, ref: str, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[dict[str, Any]]:
        """The answer from the account `ref`; the information system's errors are handled by run()."""


class ActionAccountSummary(AccountAction):
    """Amount due and due date, last declaration, last payment received, next deadline."""

    def name(self) -> str:
        return "action_account_summary"

    async def answer(self, ref: str, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[dict[str, Any]]:
        summary = await information_system().account_summary(ref)
        for text in summary_texts(summary, date.today()):
            dispatcher.utter_message(text=text)
        return []


class ActionOnlineFailure(AccountAction):
    """Why an online action fails, from the account's status, and what to do."""

    def name(self) -> str:
        return "action_online_failure"

    async def answer(self, ref: str, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[dict[str, Any]]:
        status = await information_system().account_status(ref)
        for text in status_texts(status):
            dispatcher.utter_message(text=text)
        return [SlotSet("account_status", status.status)]


class ActionThreshold(AccountAction):
    """Turnover so far this year against the micro ceiling; alert at 80 % or more."""

    def name(self) -> str:
        return "action_threshold"

    async def answer(self, ref: str, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[dict[str, Any]]:
        turnover = await information_system().turnover(ref)
        try:
            texts, alert = threshold_texts(turnover)
        except ValueError as e:   # an activity the ceilings do not know
            return _unavailable(dispatcher, self.name(), e)
        for text in texts:
            dispatcher.utter_message(text=text)
        return [SlotSet("threshold_alert", alert)]


class ActionAttestationRequest(AccountAction):
    """Records an attestation request in the SI and says how and when it arrives."""

    def name(self) -> str:
        return "action_attestation_request"

    async def answer(self, ref: str, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[dict[str, Any]]:
        kind = attestation_kind(tracker.get_slot("attestation_kind"))
        if kind is None:
            dispatcher.utter_message(text=(
                "Je peux demander l'attestation de vigilance, l'attestation de chiffre d'affaires déclaré, "
                "ou l'attestation de contribution à la formation professionnelle. Laquelle voulez-vous ?"))
            return [SlotSet("attestation_requested", False)]
        receipt = await information_system().request_attestation(ref, kind)
        for text in attestation_texts(receipt):
            dispatcher.utter_message(text=text)
        if receipt.recorded:
            log.info("%s: attestation request %s recorded", tracker.sender_id, receipt.request_id)
        return [SlotSet("attestation_requested", receipt.recorded)]
