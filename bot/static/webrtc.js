// Shared by the caller page and the agent console.
"use strict";

// The server takes one SDP offer with every candidate in it (no trickle ICE): wait for the
// gathering to complete, at most 3 s (then what was gathered goes).
function waitForIce(peer) {
  if (peer.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (peer.iceGatheringState === "complete") { peer.removeEventListener("icegatheringstatechange", done); resolve(); } };
    peer.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 3000);
  });
}
