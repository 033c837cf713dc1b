// Calls list: filters, full-text search (in masked transcripts), sort, paging. The filters
// are kept in the address so a search can be bookmarked or shared between supervisors.
"use strict";
const FIELDS = ["q", "from", "to", "channel", "outcome", "team", "question_type", "transferred", "slow", "office", "sort", "order"];
const view = { page: 1, total: 0, pageSize: 50, loaded: false };
window.supervisorList = view;   // read by the automated browser test

function query() {
  const params = new URLSearchParams();
  for (const f of FIELDS) if ($(f).value) params.set(f, $(f).value);
  params.set("page", String(view.page));
  return params;
}

async function load() {
  view.loaded = false;
  const params = query();
  history.replaceState(null, "", "/supervisor?" + params.toString());
  let data;
  try {
    data = await api("GET", "/api/supervisor/calls?" + params.toString());
  } catch (e) {
    message(e.message, "error");
    return;
  }
  message("");
  view.total = data.total;
  view.pageSize = data.page_size;
  const pages = Math.max(1, Math.ceil(data.total / data.page_size));
  $("summary").textContent = data.total === 0 ? "Aucun appel ne correspond." : `${data.total} appel${data.total > 1 ? "s" : ""}`;
  $("page").textContent = `page ${view.page} sur ${pages}`;
  $("previous").disabled = view.page <= 1;
  $("next").disabled = view.page >= pages;
  const body = $("calls").tBodies[0];
  body.replaceChildren(...data.calls.map((c) => el("tr", { dataset: { callId: c.id } },
    el("td", {}, el("a", { href: `/supervisor/calls/${encodeURIComponent(c.id)}` }, dateTime(c.started_at))),
    el("td", {}, duration(c.duration_s)),
    el("td", {}, CHANNELS[c.channel] || c.channel),
    el("td", {}, c.caller || "—"),
    el("td", {}, c.team ? TEAMS[c.team] || c.team : "—"),
    el("td", {}, c.question_type || "—"),
    el("td", {}, (OUTCOMES[c.outcome] || c.outcome || "en cours") + (c.transferred ? " · transfert" : "") + (c.slow ? " · lent" : "")),
    el("td", { className: "snippet" }, c.first_question || ""))));
  view.loaded = true;
}

async function main() {
  try {
    await signedIn();
  } catch (e) {
    message(e.message, "error");
    return;
  }
  for (const [value, label] of Object.entries(TEAMS)) $("team").append(el("option", { value }, label));
  const params = new URLSearchParams(location.search);
  for (const f of FIELDS) if (params.has(f)) $(f).value = params.get(f);
  view.page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); view.page = 1; load(); });
  $("previous").addEventListener("click", () => { view.page -= 1; load(); });
  $("next").addEventListener("click", () => { view.page += 1; load(); });
  await load();
}
main();
