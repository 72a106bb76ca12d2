"""The labelling page's HTML, CSS and script as one string (`PAGE`), served by `neipalette.data.labelling`.

The server fills in `{{nonce}}` (the CSP nonce of the page's one style and one script) and `{{token}}` (the
per-session token every POST must carry). The script queues keys and applies one per outfit, only once both
images of that outfit have loaded and no save is in flight; a 409 from the server drops the queue and shows
the current outfit.
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>NeiPalette labelling</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="neipalette-token" content="{{token}}">
<style nonce="{{nonce}}">
 * { box-sizing: border-box; }
 body { font-family: system-ui, sans-serif; margin: 0; background: #f4f4f2; color: #222; }
 header { padding: 10px 16px; background: #222; color: #eee; display: flex; flex-wrap: wrap; gap: 6px 20px;
          align-items: baseline; }
 header h1 { font-size: 18px; margin: 0; }
 #progress { font-size: 16px; } #oid { font-family: monospace; font-size: 16px; }
 main { display: flex; flex-direction: column; align-items: center; padding: 12px; }
 .pair { display: flex; gap: 12px; width: 100%; max-width: 720px; justify-content: center; }
 .pair figure { margin: 0; text-align: center; flex: 1 1 0; min-width: 0; }
 .frame { display: flex; align-items: center; justify-content: center; background: #fff; border: 1px solid #ccc;
          height: 340px; overflow: hidden; }
 .frame img { display: block; image-rendering: auto; }
 .keys { margin-top: 14px; display: flex; flex-wrap: wrap; justify-content: center; gap: 8px; }
 button { font-size: 16px; padding: 10px 14px; border-radius: 6px; border: 1px solid #888; cursor: pointer; }
 button:disabled { cursor: default; opacity: 0.5; }
 #neg { background: #f3d0d0; } #pos { background: #cfe9d3; } #skip { background: #e6e6e6; } #undo { background: #fff; }
 #status { margin-top: 12px; min-height: 1.4em; font-size: 14px; color: #555; max-width: 720px; overflow-wrap: anywhere; }
 #status.bad { color: #a40000; font-weight: 600; }
 #done { display: none; font-size: 20px; margin-top: 40px; text-align: center; overflow-wrap: anywhere; }
 #revisit { display: none; margin: 16px auto 0; background: #ffe9b3; }
 kbd { border: 1px solid #999; border-bottom-width: 2px; border-radius: 3px; padding: 0 4px; font-size: 13px; }
 @media (max-width: 560px) { .frame { height: 260px; } header h1 { font-size: 16px; } }
</style></head>
<body>
<header><h1>NeiPalette — is this outfit colour-harmonious?</h1>
 <span id="progress"></span><span>outfit <span id="oid"></span></span><span id="rater"></span></header>
<main>
 <div class="pair" id="pair">
  <figure><div class="frame"><img id="top" alt="top"></div><figcaption>top</figcaption></figure>
  <figure><div class="frame"><img id="bottom" alt="bottom"></div><figcaption>bottom</figcaption></figure>
 </div>
 <div id="done"><div id="done-text"></div><button id="revisit">label skipped <kbd>R</kbd></button></div>
 <div class="keys">
  <button id="neg" data-label="negative" disabled>negative <kbd>N</kbd> <kbd>&larr;</kbd></button>
  <button id="pos" data-label="positive" disabled>positive <kbd>P</kbd> <kbd>&rarr;</kbd></button>
  <button id="skip" data-label="skip" disabled>skip <kbd>S</kbd></button>
  <button id="undo" disabled>undo <kbd>U</kbd></button>
 </div>
 <div id="status"></div>
</main>
<script nonce="{{nonce}}">
// Keys go into a queue; one is applied only when the outfit on screen has both images loaded and no save is
// in flight, so a key never lands on an outfit whose pictures the rater has not seen.
let state = null, shown = null, busy = false, ready = false, generation = 0, stopped = false;
const queue = [], QUEUE_MAX = 50;
const token = document.querySelector('meta[name="neipalette-token"]').content;
const $ = (id) => document.getElementById(id);
function setStatus(text, bad) { $("status").textContent = text; $("status").className = bad ? "bad" : ""; }
function setButtons() {
  const on = ready && !stopped && state && !state.done;
  for (const b of ["neg", "pos", "skip"]) $(b).disabled = !on;
  $("undo").disabled = stopped || !state || !state.can_undo;
}
function load(img, url) {
  return new Promise((ok, bad) => {
    img.onload = () => ok(img); img.onerror = () => bad(new Error("image " + url + " did not load"));
    if (img.getAttribute("src") === url && img.complete && img.naturalWidth) { ok(img); return; }  // no new load event
    img.src = url;
  });
}
function scale() {  // one factor for both images: a small top stays smaller than a large bottom
  const t = $("top"), b = $("bottom");
  if (!t.naturalWidth || !b.naturalWidth) return;
  const frame = t.parentElement;
  const w = frame.clientWidth - 8, h = frame.clientHeight - 8;
  const f = Math.min(w / Math.max(t.naturalWidth, b.naturalWidth), h / Math.max(t.naturalHeight, b.naturalHeight));
  for (const img of [t, b]) {
    img.style.width = (img.naturalWidth * f) + "px"; img.style.height = (img.naturalHeight * f) + "px";
  }
  document.body.dataset.scale = f.toFixed(4);
}
function show(s) {
  state = s; ready = false; shown = null; setButtons();
  const gen = ++generation;
  $("rater").textContent = "rater " + s.rater;
  if (s.done) {
    $("pair").style.display = "none"; $("done").style.display = "block";
    $("progress").textContent = s.total + " of " + s.total + " done"; $("oid").textContent = "-";
    if (s.n_skipped > 0) {
      $("done-text").textContent = "All " + s.total + " outfits seen; " + s.n_skipped + " skipped — label them now?";
      $("revisit").style.display = "block";
    } else {
      $("done-text").textContent = "All " + s.total + " outfits rated. Run: neipalette data aggregate " + s.dataset;
      $("revisit").style.display = "none";
    }
    document.body.dataset.position = "done";
    queue.length = 0;
    pump();
    return;
  }
  $("pair").style.display = "flex"; $("done").style.display = "none";
  $("progress").textContent = (s.round ? "skipped " + s.round_position + " of " + s.round_total + " · " : "")
                              + s.position + " of " + s.total;
  $("oid").textContent = s.outfit_id;
  document.body.dataset.position = "loading";
  Promise.all([load($("top"), s.top), load($("bottom"), s.bottom)]).then(() => {
    if (gen !== generation) return;
    shown = {outfit_id: s.outfit_id, top: s.top_digest, bottom: s.bottom_digest};
    scale(); ready = true; setButtons();
    document.body.dataset.position = String(s.position);
    pump();
  }, (e) => { if (gen === generation) serverGone(e); });
}
function serverGone(e) {
  stopped = true; ready = false; queue.length = 0; setButtons();
  const cmd = state && state.restart ? state.restart : "neipalette label DATASET --rater NAME";
  setStatus("server stopped — restart `" + cmd + "` and reload this page (" + e.message + "; nothing was lost)", true);
  document.body.dataset.position = "stopped";
}
async function call(url, body) {
  busy = true;
  try {
    const r = await fetch(url, {method: body ? "POST" : "GET", body: body ? JSON.stringify(body) : undefined,
                                headers: {"Content-Type": "application/json", "X-NeiPalette-Token": token}});
    let s;
    try { s = await r.json(); } catch (e) { throw new Error("HTTP " + r.status); }
    if (r.status === 409) {
      const n = queue.length; queue.length = 0;
      setStatus("! refused: " + s.error + (n ? " (" + n + " queued keys dropped)" : ""), true);
      busy = false; show(s); return;
    }
    setStatus(s.error ? "! " + s.error : (s.saved ? "saved " + s.saved : ""), !!s.error);
    busy = false; show(s);
  } catch (e) { busy = false; serverGone(e); }
}
function pump() {
  if (busy || stopped || !state || queue.length === 0) return;
  const action = queue[0];
  if (action === "revisit") { if (!state.done) { queue.shift(); return pump(); } queue.shift(); return call("/api/revisit", {}); }
  if (action === "undo") { if (!state.done && !ready) return; queue.shift(); return call("/api/undo", {}); }
  if (state.done) { queue.shift(); return pump(); }  // nothing left to vote on
  if (!ready) return;
  queue.shift();
  call("/api/vote", {...shown, label: action});
}
function press(action) {
  if (stopped) return;
  if (queue.length >= QUEUE_MAX) { setStatus("! too many keys queued; wait for the pictures", true); return; }
  queue.push(action); pump();
}
document.addEventListener("keydown", (e) => {
  if (e.repeat || e.ctrlKey || e.metaKey || e.altKey) return;
  const k = e.key.toLowerCase();
  if (k === "n" || k === "arrowleft") press("negative");
  else if (k === "p" || k === "arrowright") press("positive");
  else if (k === "s" || k === " ") { e.preventDefault(); press("skip"); }
  else if (k === "u" || k === "backspace") { e.preventDefault(); press("undo"); }
  else if (k === "r" && state && state.done && state.n_skipped > 0) press("revisit");
});
for (const b of ["neg", "pos", "skip"]) $(b).addEventListener("click", () => press($(b).dataset.label));
$("undo").addEventListener("click", () => press("undo"));
$("revisit").addEventListener("click", () => press("revisit"));
window.addEventListener("resize", scale);
call("/api/state");
</script>
</body></html>
"""
