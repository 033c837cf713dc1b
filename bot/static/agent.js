// Agent console: presence, queue of callers handed over by the bot (with their card),
// accepting a call (browser WebRTC or desk phone), live transcript, wrap-up, callbacks.
// Everything shown from the API is built with textContent: transcripts are what callers said.
"use strict";
// $, el, api, message, TEAMS, CHANNELS, ROLES, me and leaving: console.js.
const SLOTS = { matin: "le matin", apres_midi: "l'après-midi", indifferent: "indifférent" };
const teamLabel = (t) => TEAMS[t] || t;

// Hooks read by the automated browser test.
const ac = { state: "idle", pc: null, callId: null };
window.agentConsole = ac;
let presence = { status: "paused", teams: [], device: "browser", has_phone: false };
let queue = [], selectedId = null, shownCard = "", currentCard = null, shownCallbacks = "", mic = null, callStart = 0, timer = null;
// Declined calls stay in the queue for other agents: hide them here for the browser session.
const declined = new Set(JSON.parse(sessionStorage.getItem("declined") || "[]"));

function failure(prefix, err) {
  if (err.status === 401) return;
  console.error(err);
  message(`${prefix} (${err.status ? err.message : "serveur injoignable"}).`, "error");
}

function setState(state) {
  ac.state = state;
  document.body.dataset.state = state;
  const inCall = state === "in_call" || state === "wrapup";
  $("in-call").hidden = !inCall;
  $("hangup").hidden = state !== "in_call";
  $("wrapup-form").hidden = state !== "wrapup";
  // The card moves into the call panel so it stays in view during the call and wrap-up.
  (inCall ? $("card-slot-call") : $("card-slot-main")).appendChild($("card"));
  for (const b of document.querySelectorAll("#queue .accept, #queue .decline")) b.disabled = state !== "idle";
}

// ---------- Card ----------
function field(name) { return $("card").querySelector(`[data-field="${name}"]`); }

function safeUrl(source) {
  try {
    const url = new URL(source, location.origin);
    return ["http:", "https:"].includes(url.protocol) ? url.href : null;
  } catch { return null; }
}

function renderTranscript(turns) {
  const list = $("card-transcript");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 30;
  list.replaceChildren(...(turns || []).map((turn) => turn.speaker === "caller"
    ? el("li", { className: "caller" }, el("strong", {}, "Appelant : "), turn.text || "")
    : el("li", { className: "bot" }, el("strong", {}, "Assistant : "), turn.text || "")));
  if (!list.children.length) list.append(el("li", {}, "Aucun échange."));
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function renderCard(card, transcript) {
  const key = JSON.stringify([card, transcript]);
  if (key === shownCard) return;  // redrawn only on change: keeps the reader's scroll position
  shownCard = key;
  currentCard = card;
  $("card-empty").hidden = !!card;
  $("card-body").hidden = !card;
  if (!card) { $("card-transcript").replaceChildren(); return; }
  field("slow").hidden = !card.slow;
  field("question").textContent = card.question || card.question_type || "Non précisée";
  field("team").textContent = card.team_name || teamLabel(card.team);
  field("reason").textContent = card.reason_text || card.reason || "—";
  field("identified").textContent = card.identified ? "Appelant identifié" : "Appelant non identifié";
  field("account").textContent = card.account || "—";
  field("caller").textContent = card.caller || "Masqué ou inconnu";
  field("summary").textContent = card.summary || "—";
  const rows = (card.slots || []).map((slot) => el("tr", {}, el("td", {}, slot.name || ""), el("td", {}, slot.value || "")));
  $("card-slots").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colSpan: 2 }, "Aucune"))]));
  const box = field("suggestion");
  box.replaceChildren(el("h3", {}, "Réponse suggérée (base de connaissances)"),
    el("p", {}, card.suggestion ? card.suggestion.text || "" : "Aucune réponse suggérée pour cette question."));
  // The source is shown as a link only if it is http(s): a "javascript:" URL would run here.
  const href = card.suggestion && safeUrl(card.suggestion.source);
  if (href) box.append(el("a", { href, target: "_blank", rel: "noopener noreferrer" }, "Source : " + card.suggestion.source));
  renderTranscript(transcript || card.transcript);
}

// ---------- Queue ----------
function waited(seconds) {
  const s = Math.max(0, Math.round(seconds || 0));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
}

function button(text, cls, onClick) {
  const b = el("button", { type: "button", className: cls }, text);
  b.addEventListener("click", (e) => { e.stopPropagation(); onClick(); });
  return b;
}

let entrySeq = 0;
function queueItem(entry) {
  const title = el("p", { className: "entry-title", id: "entry-" + ++entrySeq });
  const actions = el("div", { className: "actions" }, button("Voir la fiche", "select", () => select(entry.call_id)),
    button("Prendre l'appel", "accept primary", () => accept(entry.call_id)),
    button("Refuser", "decline", () => decline(entry.call_id)));
  // Each button's name is the same in every entry: the entry title tells them apart.
  for (const b of actions.children) b.setAttribute("aria-describedby", title.id);
  const li = el("li", {}, title, el("p", { className: "entry-info" }), el("span", { className: "badge slow" }, "Parler lentement"), actions);
  li.dataset.callId = entry.call_id;
  li.addEventListener("click", () => select(entry.call_id));
  return li;
}

function renderQueue() {
  const list = $("queue");
  const visible = queue.filter((e) => !declined.has(e.call_id));
  const items = new Map([...list.children].map((li) => [li.dataset.callId, li]));
  // Entries are updated in place and only re-ordered when the order changes: moving a
  // node would take the keyboard focus away from the button the agent is on.
  const ordered = visible.map((entry) => {
    const li = items.get(entry.call_id) || queueItem(entry);
    const card = entry.card || {};
    li.querySelector(".entry-title").textContent = `${card.team_name || teamLabel(entry.team)} – ${card.question || card.reason_text || "Question non précisée"}`;
    li.querySelector(".entry-info").textContent = `${CHANNELS[entry.channel] || entry.channel} · attend depuis ${waited(entry.waiting_s)}`;
    li.querySelector(".slow").hidden = !card.slow;
    li.classList.toggle("selected", entry.call_id === selectedId);
    li.setAttribute("aria-current", entry.call_id === selectedId ? "true" : "false");
    for (const b of li.querySelectorAll(".accept, .decline")) b.disabled = ac.state !== "idle";
    items.delete(entry.call_id);
    return li;
  });
  items.forEach((li) => li.remove());
  if (ordered.some((li, i) => list.children[i] !== li)) ordered.forEach((li) => list.appendChild(li));
  const n = visible.length;
  $("queue-summary").textContent = n ? `${n} appel${n > 1 ? "s" : ""} en attente.` : "Aucun appel en attente.";
  if (ac.state === "idle" && selectedId) {
    const entry = visible.find((e) => e.call_id === selectedId);
    if (entry) renderCard(entry.card);
    else { selectedId = null; renderCard(null); message("L'appel sélectionné n'est plus en attente (pris par un collègue ou raccroché)."); }
  }
}

async function pollQueue() {
  try {
    queue = (await api("GET", "/api/agent/queue")) || [];
    renderQueue();
  } catch (err) {
    if (err.status !== 401) $("queue-summary").textContent = "File d'attente indisponible, nouvel essai en cours…";
  }
}

function select(callId) {
  if (ac.state !== "idle") return;
  selectedId = callId;
  renderQueue();
}

async function decline(callId) {
  try {
    await api("POST", `/api/agent/calls/${encodeURIComponent(callId)}/decline`, {});
  } catch (err) {
    if (![404, 410].includes(err.status)) return failure("Le refus n'a pas été enregistré", err);
  }
  declined.add(callId);
  sessionStorage.setItem("declined", JSON.stringify([...declined]));
  if (selectedId === callId) { selectedId = null; renderCard(null); }
  message("Appel refusé : il reste proposé aux autres conseillers.");
  renderQueue();
}

// ---------- Call ----------
function closeAudio() {
  if (ac.pc) { ac.pc.close(); ac.pc = null; }
  if (mic) { mic.getTracks().forEach((t) => t.stop()); mic = null; }
  $("call-audio").srcObject = null;
}

async function accept(callId) {
  if (ac.state !== "idle") return;
  selectedId = callId;
  renderQueue();
  setState("accepting");
  ac.callId = callId;
  const device = $("device").value;  // what the agent sees selected right now
  const path = `/api/agent/calls/${encodeURIComponent(callId)}/accept`;
  message("Prise de l'appel en cours…");
  let accepted = false;
  try {
    if (device === "phone") {
      await api("POST", path, { device: "phone" });
      accepted = true;
    } else {
      try {
        mic = await navigator.mediaDevices.getUserMedia({ audio: true });
      } catch {
        throw new ApiError(-1, "Micro inaccessible : autorisez le micro dans le navigateur, ou choisissez le téléphone de bureau.");
      }
      const pc = ac.pc = new RTCPeerConnection();
      mic.getAudioTracks().forEach((t) => pc.addTrack(t, mic));
      pc.ontrack = (e) => { if (e.track.kind === "audio") $("call-audio").srcObject = e.streams[0] || new MediaStream([e.track]); };
      pc.onconnectionstatechange = () => {
        if (pc.connectionState === "failed") message("La liaison audio est perdue. Raccrochez si l'appelant ne vous entend plus.", "error");
      };
      await pc.setLocalDescription(await pc.createOffer());
      await waitForIce(pc);  // the server takes one SDP with all candidates (no trickle)
      const answer = await api("POST", path, { device: "browser", sdp: pc.localDescription.sdp, type: "offer" });
      accepted = true;
      await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
    }
  } catch (err) {
    // The server gave us the call but the audio failed: stay on it so the agent can hang up.
    if (accepted) return startCall("Appel pris, mais le son n'a pas pu être établi : raccrochez et proposez un rappel.");
    closeAudio();
    ac.callId = null;
    setState("idle");
    if ([409, 410].includes(err.status)) { selectedId = null; renderCard(null); }
    if (err.status === 409) message("Cet appel a déjà été pris par un autre conseiller.", "error");
    else if (err.status === 410) message("L'appelant a raccroché.", "error");
    else if (err.status === -1) message(err.message, "error");
    else failure("L'appel n'a pas pu être pris", err);
    pollQueue();
    return;
  }
  startCall(device === "phone" ? "Votre téléphone de bureau sonne : décrochez pour parler à l'appelant." : "Appel pris.");
}

function startCall(text) {
  setState("in_call");
  message("");
  $("call-status").textContent = text;
  callStart = Date.now();
  clearInterval(timer);
  const tick = () => {
    const s = Math.floor((Date.now() - callStart) / 1000);
    $("call-timer").textContent = `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
  };
  tick();
  timer = setInterval(tick, 1000);
  $("hangup").focus();
}

const CALL_STATES = { briefing: "Mise en relation : l'assistant présente l'appel…", connected: "En communication avec l'appelant." };

async function pollCall() {
  if (ac.state !== "in_call" || !ac.callId) return;
  try {
    const call = await api("GET", `/api/agent/calls/${encodeURIComponent(ac.callId)}`);
    if (ac.state !== "in_call") return;  // hung up while the request was in flight
    if (call.card || call.transcript) renderCard(call.card || currentCard, call.transcript);
    if (call.state === "ended") return endCall("L'appelant a raccroché. Complétez la clôture de l'appel.");
    if (CALL_STATES[call.state]) $("call-status").textContent = CALL_STATES[call.state];
  } catch (err) {
    if ([404, 410].includes(err.status)) endCall("L'appel est terminé. Complétez la clôture de l'appel.");
    else if (err.status !== 401) $("call-status").textContent = "Suivi de l'appel indisponible, nouvel essai en cours…";
  }
}

function endCall(text) {
  closeAudio();
  clearInterval(timer);
  setState("wrapup");
  $("call-status").textContent = text;
  $("wrapup-outcome").focus();
}

async function hangup() {
  if (ac.state !== "in_call") return;
  $("hangup").disabled = true;
  try {
    await api("POST", `/api/agent/calls/${encodeURIComponent(ac.callId)}/hangup`, {});
    endCall("Vous avez raccroché. Complétez la clôture de l'appel.");
  } catch (err) {
    if (err.status === 401) return;
    // The audio is cut here anyway; the server may still hold the call, so say so.
    endCall("Appel terminé de votre côté.");
    if (![404, 410].includes(err.status)) failure("Le raccrochage n'a pas été confirmé par le serveur", err);
  } finally {
    $("hangup").disabled = false;
  }
}

async function submitWrapup(event) {
  event.preventDefault();
  const outcome = $("wrapup-outcome").value;
  if (!outcome) { message("Choisissez le résultat de l'appel.", "error"); $("wrapup-outcome").focus(); return; }
  $("wrapup-submit").disabled = true;
  try {
    await api("POST", `/api/agent/calls/${encodeURIComponent(ac.callId)}/wrapup`, { note: $("wrapup-note").value.slice(0, 2000), outcome });
    $("wrapup-form").reset();
    $("wrapup-count").textContent = "0";
    ac.callId = null;
    selectedId = null;
    renderCard(null);
    setState("idle");
    message("Clôture enregistrée.");
    pollQueue();
    pollCallbacks();
  } catch (err) {
    failure("La clôture n'a pas été enregistrée, réessayez", err);
  } finally {
    $("wrapup-submit").disabled = false;
  }
}

// ---------- Presence ----------
function renderPresence() {
  presence.teams = presence.teams || [];
  const names = presence.teams.map(teamLabel).join(", ") || "aucune équipe";
  const device = presence.device === "phone" ? "téléphone de bureau" : "navigateur";
  $("presence-status").textContent = presence.status === "available" ? `Disponible (${names}) – ${device}` : "En pause";
  $("device").value = presence.device === "phone" && presence.has_phone ? "phone" : "browser";
  for (const box of $("teams").querySelectorAll("input[name=team]")) box.checked = presence.teams.includes(box.value);
}

async function setPresence(status) {
  const teams = [...$("teams").querySelectorAll("input[name=team]:checked")].map((b) => b.value);
  if (status === "available" && !teams.length) { message("Cochez au moins une équipe pour vous rendre disponible.", "error"); return; }
  try {
    const data = await api("POST", "/api/agent/presence", { status, teams, device: $("device").value });
    presence = { ...presence, ...data };
    renderPresence();
    message(status === "available" ? "Vous êtes disponible." : "Vous êtes en pause.");
  } catch (err) {
    failure("Le changement de disponibilité a échoué", err);
  }
}

// ---------- Callbacks ----------
async function pollCallbacks() {
  let list;
  try {
    list = (await api("GET", "/api/agent/callbacks")) || [];
  } catch (err) {
    if (err.status !== 401) $("callbacks-summary").textContent = "Rappels indisponibles, nouvel essai bientôt…";
    return;
  }
  const key = JSON.stringify(list);
  if (key === shownCallbacks) return;  // unchanged: keep the keyboard focus where it is
  shownCallbacks = key;
  const pending = list.filter((c) => !c.done_at).length;
  $("callbacks-summary").textContent = pending ? `${pending} rappel${pending > 1 ? "s" : ""} à effectuer.` : "Aucun rappel à effectuer.";
  $("callbacks").replaceChildren(...list.map((cb) => {
    const created = new Date(cb.created_at);
    // The number is shown in full on purpose: the agent has to dial it.
    return el("li", { className: cb.done_at ? "finished" : "" },
      el("a", { className: "phone", href: "tel:" + String(cb.phone || "").replace(/[^0-9+]/g, "") }, String(cb.phone || "")),
      el("p", {}, `${cb.team_name || teamLabel(cb.team)} · créneau : ${SLOTS[cb.time_slot] || cb.time_slot || "—"}` +
        (isNaN(created) ? "" : ` · demandé le ${created.toLocaleString("fr-FR")}`)),
      el("p", {}, cb.topic || ""),
      cb.done_at ? el("p", {}, "Rappel effectué.") : button("Marquer comme rappelé", "done", () => callbackDone(cb.id)));
  }));
}

async function callbackDone(id) {
  try {
    await api("POST", `/api/agent/callbacks/${encodeURIComponent(id)}/done`, {});
    message("Rappel marqué comme effectué.");
  } catch (err) {
    failure("Le rappel n'a pas pu être marqué comme effectué", err);
  }
  pollCallbacks();
}

// ---------- Start ----------
// Each poll waits for its previous request to finish before the next one is scheduled.
function loop(ms, fn) {
  const run = async () => {
    if (leaving) return;
    try { await fn(); } catch (err) { console.error(err); }  // a bad payload must not stop polling
    setTimeout(run, ms);
  };
  run();
}

async function init() {
  try {
    me = await api("GET", "/api/me");
  } catch (err) {
    if (err.status === 401) return;
    message("Impossible de charger votre profil (" + err.message + "). Nouvel essai dans 5 secondes…", "error");
    setTimeout(init, 5000);
    return;
  }
  message("");
  $("whoami").textContent = `Connecté : ${me.username} (${ROLES[me.role] || me.role})`;
  for (const team of me.teams || []) {
    $("teams").append(el("label", {}, el("input", { type: "checkbox", name: "team", value: team }), " " + teamLabel(team)));
  }
  try {
    presence = { ...presence, ...(await api("GET", "/api/agent/presence")) };
  } catch (err) {
    failure("Votre disponibilité n'a pas pu être lue", err);
  }
  if (!presence.has_phone) $("device").querySelector("option[value=phone]").remove();
  renderPresence();
  if (presence.call_id) await resume(presence.call_id);
  loop(1000, pollQueue);
  loop(2000, pollCall);
  loop(10000, pollCallbacks);
}

// After a reload the call goes on server-side, but the browser's audio link is lost.
async function resume(callId) {
  ac.callId = callId;
  try {
    const call = await api("GET", `/api/agent/calls/${encodeURIComponent(callId)}`);
    renderCard(call.card, call.transcript);
    if (call.state === "ended") return endCall("Appel terminé. Complétez la clôture de l'appel.");
  } catch (err) {
    if (err.status === 401) return;
  }
  startCall(presence.device === "phone" ? "Appel en cours sur votre téléphone de bureau."
    : "Appel repris après rechargement : le son du navigateur est coupé. Raccrochez si besoin.");
}

$("go-available").addEventListener("click", () => setPresence("available"));
$("go-paused").addEventListener("click", () => setPresence("paused"));
$("hangup").addEventListener("click", hangup);
$("wrapup-form").addEventListener("submit", submitWrapup);
$("wrapup-note").addEventListener("input", () => { $("wrapup-count").textContent = String($("wrapup-note").value.length); });
$("logout").addEventListener("click", async () => {
  try {
    await api("POST", "/api/logout", {});
  } catch (err) {
    if (err.status !== 401) return failure("La déconnexion a échoué", err);
  }
  leaving = true;
  closeAudio();
  location.assign("/login");
});
setState("idle");
init();
