// Shared by the agent and supervisor consoles: the API helper (credentials, CSRF, 401 ->
// sign-in), labels, and node building with textContent only (transcripts are what callers said).
"use strict";
const $ = (id) => document.getElementById(id);
const TEAMS = {
  declaration: "Déclarations", paiement: "Paiements", cotisations: "Cotisations",
  creation: "Création d'entreprise", cessation: "Cessation d'activité", attestations: "Attestations",
  compte: "Compte en ligne", seuils: "Seuils et plafonds", employeur: "Employeurs",
  recouvrement: "Recouvrement", difficultes: "Difficultés", hors_perimetre: "Hors périmètre", accueil: "Accueil",
};
const CHANNELS = { webrtc: "Appel web", sip: "Téléphone", text: "Messagerie" };
const OUTCOMES = {
  completed: "terminé par le callbot", transferred: "transféré", handoff: "en attente d'un conseiller",
  caller_hung_up: "raccroché", error: "erreur", not_connected: "non connecté",
};
const SPEAKERS = { caller: "Appelant", bot: "Callbot", agent: "Conseiller" };
const ROLES = { agent: "conseiller", supervisor: "superviseur", admin: "administrateur" };
let me = null;
let leaving = false;   // signed out or sent to sign in: errors of requests cut short are not shown

function el(tag, props = {}, ...children) {
  const { dataset, ...rest } = props;
  const node = Object.assign(document.createElement(tag), rest);
  Object.assign(node.dataset, dataset || {});
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET") {
    init.headers["Content-Type"] = "application/json";
    init.headers["X-CSRF-Token"] = me ? me.csrf_token : "";
    init.body = JSON.stringify(body || {});
  }
  const response = await fetch(path, init).catch(() => null);
  if (!response) throw new ApiError(0, "Le serveur est injoignable.");
  if (response.status === 401) {
    leaving = true;
    location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
    throw new ApiError(401, "Session expirée.");
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, (data && data.error) || `erreur ${response.status}`);
  return data;
}

function message(text, kind = "info") {
  const m = $("message");
  m.textContent = text;
  m.className = "message " + (text ? kind : "");
}

const dateTime = (iso) => new Date(iso).toLocaleString("fr-FR", { dateStyle: "short", timeStyle: "medium" });
function duration(seconds) {
  if (seconds === null || seconds === undefined) return "en cours";
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
}
const clock = (ms) => {
  const s = Math.floor(ms / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
};

async function signedIn() {
  me = await api("GET", "/api/me");
  $("whoami").textContent = `${me.username} (${ROLES[me.role] || me.role})`;
  $("logout").addEventListener("click", async () => {
    leaving = true;
    await api("POST", "/api/logout").catch(() => null);
    location.assign("/login?next=/supervisor");
  });
  return me;
}
