// Live updates: when cases change, the page's data is fetched again and swapped in, without a
// reload. EventSource reconnects by itself after a dropped connection. The new HTML is parsed
// with DOMParser, which runs no script, and it is the server's escaped rendering.
(function () {
  const main = document.querySelector('main[data-live]');
  if (!main || !window.EventSource) return;
  const status = document.getElementById('live-status');
  let running = false; // a fetch of the page is under way
  let wanted = false; // a change was announced since it started: what it reads may predate it
  let retries = 0;
  let held = false; // a fetched page was not swapped in: the user was typing in a field
  async function refresh() {
    if (running) {
      wanted = true;
      return;
    }
    running = true;
    wanted = false;
    let ok = false;
    try {
      const res = await fetch(location.href, { credentials: 'same-origin', headers: { accept: 'text/html' } });
      if (res.ok) {
        const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
        const next = doc.querySelector('main[data-live]');
        // Keep a form the user is typing in: swap only when no field of the page has focus (and
        // fetch again once the focus leaves the page's fields).
        const active = document.activeElement;
        held = Boolean(next && active && main.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName));
        if (next && !held) main.replaceChildren(...next.childNodes);
        ok = true;
      }
    } catch {
      // The server could not be reached: tried again below.
    } finally {
      running = false;
    }
    if (ok) retries = 0;
    if (wanted) void refresh();
    // A failed fetch would leave the page without the change it was told of: a few more tries.
    else if (!ok && retries < 5) setTimeout(() => void refresh(), 1000 * ++retries);
  }
  // Focus moving to a button of the page (a form being sent) is not leaving it: the swap would
  // take the button away under the click.
  main.addEventListener('focusout', (e) => {
    if (held && !(e.relatedTarget && main.contains(e.relatedTarget))) void refresh();
  });
  let dropped = false;
  const source = new EventSource('/events');
  source.addEventListener('cases', () => void refresh());
  source.addEventListener('open', () => {
    if (status) status.textContent = 'live';
    // Changes announced while the connection was down were not heard: read the page again.
    if (dropped) void refresh();
    dropped = false;
  });
  source.addEventListener('error', () => {
    dropped = true;
    if (status) status.textContent = 'reconnecting…';
  });
})();
