// pipeline console: live refresh, and nothing else. A page whose <main> has data-refresh="URL" gets it
// replaced by that URL's answer (the same page's content, same origin) every data-interval ms while the tab
// is visible; a [data-final] element in it (a job that has finished) stops the refresh. Open <details> stay
// open across a refresh. Actions need no script: they are forms, confirmed on a page of their own.
(function () {
  "use strict";
  var main = document.querySelector("main[data-refresh]");
  if (!main) {
    return;
  }
  var url = main.getAttribute("data-refresh");
  var interval = Number(main.getAttribute("data-interval")) || 5000;
  var busy = false;
  var timer = null;

  function stop() {
    if (timer !== null) {
      clearInterval(timer);
      timer = null;
    }
    main.setAttribute("data-refresh-stopped", "");
  }

  function openDetails() {
    return Array.prototype.map.call(main.querySelectorAll("details[open] > summary"), function (summary) {
      return summary.textContent;
    });
  }

  function reopen(summaries) {
    main.querySelectorAll("details > summary").forEach(function (summary) {
      if (summaries.indexOf(summary.textContent) >= 0) {
        summary.parentElement.open = true;
      }
    });
  }

  function refresh() {
    if (busy || document.hidden) {
      return;
    }
    busy = true;
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        return response.text().then(function (text) {
          return { ok: response.ok || response.status === 502, text: text };
        });
      })
      .then(function (answer) {
        if (answer.ok) {
          var open = openDetails();
          main.innerHTML = answer.text;
          reopen(open);
          main.setAttribute("data-refreshed", new Date().toISOString());
        }
        if (main.querySelector("[data-final]")) {
          stop();
        }
      })
      .catch(function () {
        // The console stopped, or the network blinked: keep the page as it is and try again.
      })
      .then(function () {
        busy = false;
      });
  }

  if (main.querySelector("[data-final]")) {
    stop();
  } else {
    timer = setInterval(refresh, interval);
  }
})();
