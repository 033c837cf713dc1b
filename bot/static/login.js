// Sign-in page of the agent and supervisor consoles. The session cookie is HttpOnly: this page never sees
// it; the console fetches its CSRF token again from /api/me, so nothing is stored here.
"use strict";
const $ = (id) => document.getElementById(id);

// Only a same-origin path may be the target after sign-in: "//host" and "/\host" are
// read by browsers as another host (open redirect), so they fall back to the user's own
// console (supervisors and admins: the supervisor console; agents: theirs).
function nextPage(role) {
  const home = role === "supervisor" || role === "admin" ? "/supervisor" : "/agent";
  const next = new URLSearchParams(location.search).get("next") || "";
  if (!next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\") || /[\u0000-\u001f]/.test(next)) return home;
  try {
    const url = new URL(next, location.origin);
    return url.origin === location.origin ? url.pathname + url.search + url.hash : home;
  } catch {
    return home;
  }
}

function showError(text) {
  $("login-error").textContent = text;
}

async function signIn(event) {
  event.preventDefault();
  const username = $("username").value.trim();
  const password = $("password").value;
  if (!username || !password) {
    showError("Saisissez votre identifiant et votre mot de passe.");
    (username ? $("password") : $("username")).focus();
    return;
  }
  showError("");
  $("login-submit").disabled = true;
  $("login-submit").textContent = "Connexion…";
  let response;
  try {
    response = await fetch("/api/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
  } catch {
    response = null;
  }
  if (response && response.ok) {
    const me = await response.json().catch(() => ({}));
    location.assign(nextPage(me.role));
    return;
  }
  $("login-submit").disabled = false;
  $("login-submit").textContent = "Se connecter";
  $("password").value = "";
  $("password").focus();
  if (!response) showError("Le service est injoignable. Vérifiez votre connexion et réessayez.");
  else if (response.status === 401) showError("Identifiant ou mot de passe incorrect.");
  else if (response.status === 429) showError("Trop d'essais : compte bloqué temporairement, réessayez plus tard.");
  else showError(`La connexion a échoué (erreur ${response.status}). Réessayez dans un instant ou contactez un administrateur.`);
}

$("login-form").addEventListener("submit", signIn);
