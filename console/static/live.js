// Live updates: when cases change, the page's data is fetched again and swapped in, without a
// reload. EventSource reconnects by itself after a dropped connection. The new HTML is parsed
// with DOMParser, which runs no script, and it is the server's escaped rendering.
(function () {
  const main = document.querySelector('main[data-live]');
  if (!main || !window.EventSource) return;
  const status = document.getElementById('live-status');
  let pending = false;
  async function refresh() {
    if (pending) return;
    pending = true;
    try {
      const res = await fetch(location.href, { credentials: 'same-origin', headers: { accept: 'text/html' } });
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
      const next = doc.querySelector('main[data-live]');
      // Keep a form the user is typing in: swap only when no field of the page has focus.
      const active = document.activeElement;
      if (next && !(active && main.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName))) main.replaceChildren(...next.childNodes);
    } finally {
      pending = false;
    }
  }
  const source = new EventSource('/events');
  source.addEventListener('cases', () => void refresh());
  source.addEventListener('open', () => status && (status.textContent = 'live'));
  source.addEventListener('error', () => status && (status.textContent = 'reconnecting…'));
})();
