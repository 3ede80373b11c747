// "Copy" buttons: <button data-copy="ID"> copies the text of the element with that id. One
// listener on the document, so it keeps working after live updates swap the page's content.
(function () {
  document.addEventListener('click', async (event) => {
    const button = event.target instanceof Element ? event.target.closest('button[data-copy]') : null;
    const source = button && document.getElementById(button.getAttribute('data-copy'));
    if (!source) return;
    const text = source.value ?? source.textContent;
    let copied = false;
    try {
      await navigator.clipboard.writeText(text);
      copied = true;
    } catch {
      // No clipboard API (plain HTTP on another host): select the text and copy it the old way.
      if (source.select) source.select();
      copied = document.execCommand && document.execCommand('copy');
    }
    const label = button.getAttribute('data-label') || button.textContent;
    button.setAttribute('data-label', label);
    button.textContent = copied ? 'Copied' : 'Select the text and copy it';
    setTimeout(() => (button.textContent = label), 2000);
  });
})();
