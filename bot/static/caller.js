// Caller page: one WebRTC call to the bot, keypad over the data channel, live transcript.
// Options in the query string: autostart=1 (call on load), record=1 (keep the received
// audio in window.callbot.received for checks), loopback=1 (offer only 127.0.0.1 candidates).
"use strict";
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const callbot = { state: "idle", callId: null, transcript: [], received: [], receivedRate: 0 };
window.callbot = callbot;
let pc = null, channel = null, recorderCtx = null;

function status(text) { $("status").textContent = text; }

function addLine(speaker, text) {
  callbot.transcript.push({ speaker, text });
  const li = document.createElement("li");
  li.className = speaker;
  li.textContent = (speaker === "bot" ? "Assistant : " : "Vous : ") + text;
  $("transcript").appendChild(li);
  li.scrollIntoView({ block: "end" });
}

function onlyLoopback(sdp) {
  return sdp.split("\r\n").filter((l) => !l.startsWith("a=candidate:") || l.includes(" 127.0.0.1 ")).join("\r\n");
}

function record(stream) {
  recorderCtx = new AudioContext();
  callbot.receivedRate = recorderCtx.sampleRate;
  const source = recorderCtx.createMediaStreamSource(stream);
  const node = recorderCtx.createScriptProcessor(4096, 1, 1);
  node.onaudioprocess = (e) => { callbot.received.push(Array.from(e.inputBuffer.getChannelData(0))); };
  source.connect(node);
  node.connect(recorderCtx.destination);
}

async function call() {
  $("call").disabled = true;
  status("Connexion en cours…");
  try {
    const mic = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
    pc = new RTCPeerConnection();
    mic.getAudioTracks().forEach((t) => pc.addTrack(t, mic));
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("video", { direction: "recvonly" });
    channel = pc.createDataChannel("chat", { ordered: true });
    callbot.channel = channel;
    channel.onmessage = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch { return; }
      if (msg && msg.type === "transcript") addLine(msg.speaker, msg.text);
    };
    pc.ontrack = (e) => {
      if (e.track.kind !== "audio") return;
      const stream = new MediaStream([e.track]);
      $("remote").srcObject = stream;
      if (params.get("record") === "1") record(stream);
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "connected") { callbot.state = "connected"; status("En ligne. Parlez après le message d'accueil."); }
      if (["failed", "closed", "disconnected"].includes(pc.connectionState)) hangup("L'appel est terminé.");
    };
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIce(pc);
    let sdp = pc.localDescription.sdp;
    if (params.get("loopback") === "1") sdp = onlyLoopback(sdp);
    const response = await fetch("/api/offer", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ sdp, type: "offer" }) });
    if (response.status === 503) {
      callbot.state = "busy";
      status("Toutes les lignes sont occupées. Merci de rappeler dans quelques minutes.");
      $("call").disabled = false;
      pc.close(); pc = null;
      return;
    }
    if (!response.ok) throw new Error((await response.json()).error || response.statusText);
    const answer = await response.json();
    callbot.callId = answer.call_id;
    await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
    $("hangup").disabled = false;
  } catch (err) {
    console.error(err);
    callbot.state = "failed";
    status("L'appel n'a pas pu être établi. Vérifiez le micro et réessayez.");
    $("call").disabled = false;
  }
}

function hangup(message) {
  if (pc) { pc.close(); pc = null; }
  callbot.state = "ended";
  status(message || "Vous avez raccroché.");
  $("hangup").disabled = true;
  $("call").disabled = false;
}

function sendKey(key) {
  if (channel && channel.readyState === "open") {
    channel.send(JSON.stringify({ label: "rtvi-ai", type: "dtmf", keys: key }));
  }
}

for (const key of ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"]) {
  const b = document.createElement("button");
  b.textContent = key;
  b.setAttribute("aria-label", "Touche " + key);
  b.onclick = () => sendKey(key);
  $("keypad").appendChild(b);
}
$("call").onclick = call;
$("hangup").onclick = () => hangup();
callbot.hangup = () => hangup();
if (params.get("autostart") === "1") call();
