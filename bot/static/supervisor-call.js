// One call: the recording beside the transcript; a click on a turn seeks to it; the turn
// being played is highlighted; the events as a timeline; exports; unmasking for admins.
"use strict";
const callId = decodeURIComponent(location.pathname.split("/").pop());
const state = { ready: false, call: null, current: null };
window.supervisorCall = state;   // read by the automated browser test

const EVENTS = {
  handoff: (d) => `Orientation vers un conseiller (${TEAMS[d.team] || d.team || "?"}, motif : ${d.reason || "?"})`,
  queued: (d) => `Mis en file d'attente (${TEAMS[d.team] || d.team || "?"})`,
  queue_left: (d) => `Sortie de la file (${d.state === "abandoned" ? "l'appelant a raccroché" : d.state || "?"})`,
  queue_timeout: () => "Aucun conseiller disponible à temps",
  callback_booked: () => "Rappel programmé",
  agent_accepted: (d) => `Pris par ${d.agent || "un conseiller"}`,
  agent_connected: (d) => `Conseiller en ligne avec l'appelant (${d.agent || ""})`,
  agent_left: () => "Le conseiller a quitté l'appel",
  agent_declined: () => "Refusé par un conseiller",
  agent_wrapup: (d) => `Clôture par le conseiller : ${d.outcome || ""}${d.note ? " — " + d.note : ""}`,
  dtmf: (d) => `Touches du clavier : ${d.keys || ""}`,
  slow_speech: (d) => `Élocution lente ${d.on ? "activée" : "désactivée"}${d.reason ? " (" + d.reason + ")" : ""}`,
  slow_preference: (d) => `Préférence d'élocution lente ${d.kept ? "conservée" : "retirée"}`,
  fallback: (d) => `Réponse de secours (${d.backend || "?"}, ${d.outcome || "?"})${Array.isArray(d.passages) && d.passages.length ? " — passages : " + d.passages.join(", ") : ""}`,
  turns_merged: () => "Deux morceaux de phrase réunis en une question",
  barge_in: () => "L'appelant a interrompu le callbot",
  no_input: (d) => `Silence de l'appelant (${d.seconds || "?"} s)`,
  not_heard: (d) => `Parole non comprise (${d.voiced_s ?? "?"} s de voix), redemandée`,
  error: (d) => `Erreur : ${Object.values(d).join(" ")}`,
  transfer_requested: (d) => `Transfert demandé (${TEAMS[d.team] || d.team || "?"})`,
  action: (d) => `Action ${d.name || ""} : ${!d.ok ? "serveur d'actions indisponible" : d.identified === true ? "appelant identifié" : d.identified === false ? "identification refusée" : "faite"}`,
};
// voice/end_of_turn.py's reasons, as a supervisor reads them.
const END_OF_TURN = {
  complete: "phrase complète",
  "likely complete": "phrase probablement complète",
  unsure: "fin incertaine",
  "open phrase": "phrase laissée ouverte",
  number: "chiffres en cours",
  "short answer": "réponse courte attendue",
  "no audio model": "sans modèle audio",
  silence: "silence seul",
  forced: "tour coupé (trop long ou fin d'appel)",
};
const percent = (p) => `${Math.round(p * 100)} %`;
function endOfTurnText(e) {
  const signals = [["voix", e.probability], ["mots", e.words_probability], ["ensemble", e.turn_probability]]
    .filter(([, p]) => p !== null && p !== undefined).map(([name, p]) => `${name} ${percent(p)}`);
  return `fin de tour après ${e.decided_ms} ms : ${END_OF_TURN[e.reason] || e.reason}, attente ${e.wait_ms} ms` +
    (signals.length ? ` (${signals.join(", ")})` : "");
}

const eventText = (e) => (EVENTS[e.kind] ? EVENTS[e.kind](e.data || {}) :
  e.kind.startsWith("transfer_") ? `Transfert : ${e.kind.slice(9)}` : e.kind);

function turnNode(turn) {
  const details = [];
  if (turn.asr_confidence !== null && turn.asr_confidence !== undefined) details.push(`confiance ASR ${Math.round(turn.asr_confidence * 100)} %`);
  if (turn.intent) details.push(`type : ${turn.intent}${turn.intent_score !== null && turn.intent_score !== undefined ? " (" + turn.intent_score.toFixed(2) + ")" : ""}`);
  if (turn.total_ms !== null && turn.total_ms !== undefined) details.push(`délai de réponse ${turn.total_ms} ms`);
  if (turn.end_of_turn) details.push(endOfTurnText(turn.end_of_turn));
  const timed = turn.start_ms !== null && turn.start_ms !== undefined;
  const button = el("button", { type: "button", className: "turn-seek", disabled: !timed || !state.call.recording_url },
    timed ? clock(turn.start_ms) : "—");
  button.setAttribute("aria-label", timed ? `Écouter à partir de ${clock(turn.start_ms)}` : "pas de minutage");
  button.addEventListener("click", () => seek(turn));
  return el("li", { className: `turn ${turn.speaker}`, dataset: { index: turn.index, startMs: turn.start_ms ?? "" } },
    button, el("strong", {}, (SPEAKERS[turn.speaker] || turn.speaker) + " : "), el("span", { className: "text" }, turn.text),
    details.length ? el("small", { className: "details" }, details.join(" · ")) : null);
}

function seek(turn) {
  const player = $("player");
  player.currentTime = turn.start_ms / 1000;
  player.play().catch(() => null);   // a browser may refuse to play without a gesture: the position is set anyway
  highlight();
}

// The turn being played: the last one that started at or before the player's position.
function highlight() {
  const ms = $("player").currentTime * 1000;
  let current = null;
  for (const turn of state.call.turns) if (turn.start_ms !== null && turn.start_ms <= ms + 1) current = turn.index;
  if (current === state.current) return;
  state.current = current;
  for (const node of $("turns").children) {
    const on = Number(node.dataset.index) === current;
    node.classList.toggle("playing", on);
    if (on) node.setAttribute("aria-current", "true"); else node.removeAttribute("aria-current");
  }
}

function render(call) {
  state.call = call;
  const facts = [["Début", dateTime(call.started_at)], ["Durée", call.ended_at ? duration((new Date(call.ended_at) - new Date(call.started_at)) / 1000) : "en cours"],
    ["Canal", CHANNELS[call.channel] || call.channel], ["Appelant", call.caller || "—"], ["Équipe", call.team ? TEAMS[call.team] || call.team : "—"],
    ["Antenne", call.region || "—"], ["Issue", OUTCOMES[call.outcome] || call.outcome || "en cours"]];
  $("facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  $("masked-note").hidden = !call.masked;
  if (call.recording_url) $("player").src = call.recording_url;
  $("player").hidden = !call.recording_url;
  $("no-recording").hidden = Boolean(call.recording_url);
  $("turns").replaceChildren(...call.turns.map(turnNode));
  $("timeline").replaceChildren(...call.timeline.map((e) => el("li", { dataset: { kind: e.kind } },
    el("span", { className: "at" }, clock(e.at_ms)), " ", eventText(e))));
  state.current = undefined;
  highlight();
}

async function main() {
  try {
    await signedIn();
    render(await api("GET", `/api/supervisor/calls/${encodeURIComponent(callId)}`));
  } catch (e) {
    message(e.status === 404 ? "Cet appel n'existe pas ou a été supprimé à l'échéance de conservation." : e.message, "error");
    return;
  }
  const base = `/api/supervisor/calls/${encodeURIComponent(callId)}`;
  $("export-json").href = base + "/export";
  $("export-vtt").href = base + "/transcript.vtt";
  $("player").addEventListener("timeupdate", highlight);
  $("player").addEventListener("seeked", highlight);
  if (me.role === "admin") {
    $("unmask").hidden = false;
    $("unmask").addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        render(await api("POST", `/api/supervisor/calls/${encodeURIComponent(callId)}/unmask`, { reason: $("unmask-reason").value }));
        message("Appel affiché sans masque ; le motif est journalisé.");
      } catch (e) {
        message(e.message, "error");
      }
    });
  }
  state.ready = true;
}
main();
